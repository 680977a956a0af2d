using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

// The manifest validator: steps, requests, pagination and extraction.
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        private StepSpec? Step(JsonNode? node, int index)
        {
            var ptr = $"/steps/{index}";
            var obj = Obj(node, ptr, ["id", "when", "for_each", "concurrency", "request", "extract", "paginate", "retry", "timeout_seconds", "error_when", "expect_status"]);
            if (obj is null)
            {
                return null;
            }
            var id = Str(obj, "id", ptr, required: true) ?? $"step{index}";
            if (!Identifier().IsMatch(id))
            {
                Error($"{ptr}/id", $"Step id '{id}' must start with a letter or '_' and contain only letters, digits, '_' and '-'.");
            }
            var scope = new StepScope(index, true);
            var when = Str(obj, "when", ptr, required: false);
            Template(when, $"{ptr}/when", scope with { SecretsAllowed = false });
            var forEach = Str(obj, "for_each", ptr, required: false);
            if (forEach is not null)
            {
                var match = ForEachReference().Match(forEach);
                if (!match.Success)
                {
                    Error($"{ptr}/for_each", $"'for_each' must name a list extracted by an earlier step, as steps.<id>.<name>; got '{forEach}'.");
                }
                else
                {
                    StepRef(match.Groups[1].Value, match.Groups[2].Value, $"{ptr}/for_each", scope);
                }
            }
            var concurrency = Int(obj, "concurrency", ptr, required: false);
            if (concurrency is < 1 or > 64)
            {
                Error($"{ptr}/concurrency", "'concurrency' must be between 1 and 64.");
            }
            var request = Request(obj["request"], $"{ptr}/request", scope);
            var extract = Extract(obj, ptr);
            var paginate = Paginate(obj, ptr, extract);
            RetrySpec? retry = null;
            if (Obj(obj["retry"], $"{ptr}/retry", ["max_attempts", "on_status", "idempotent"], optional: true) is { } retryObj)
            {
                var attempts = Int(retryObj, "max_attempts", $"{ptr}/retry", required: false);
                if (attempts is < 1 or > 20)
                {
                    Error($"{ptr}/retry/max_attempts", "'max_attempts' must be between 1 and 20.");
                }
                retry = new RetrySpec(attempts, IntList(retryObj, "on_status", $"{ptr}/retry"), Bool(retryObj, "idempotent", $"{ptr}/retry") ?? false);
            }
            var timeout = Int(obj, "timeout_seconds", ptr, required: false);
            if (timeout is < 1 or > 3600)
            {
                Error($"{ptr}/timeout_seconds", "'timeout_seconds' must be between 1 and 3600.");
            }
            var errorWhen = Str(obj, "error_when", ptr, required: false);
            JsonPath(errorWhen, $"{ptr}/error_when");
            var expect = IntList(obj, "expect_status", ptr);
            if (request is null)
            {
                return null;
            }
            return new StepSpec(id, request)
            {
                When = when,
                ForEach = forEach is null ? null : ForEachReference().Match(forEach) is { Success: true } m ? $"steps.{m.Groups[1].Value}.{m.Groups[2].Value}" : forEach,
                Concurrency = concurrency,
                Extract = extract,
                Paginate = paginate,
                Retry = retry,
                TimeoutSeconds = timeout,
                ErrorWhen = errorWhen,
                ExpectStatus = expect,
            };
        }

        private PaginateSpec? Paginate(JsonObject step, string ptr, IReadOnlyDictionary<string, string> extract)
        {
            ptr += "/paginate";
            var obj = Obj(step["paginate"], ptr,
                ["type", "limit_param", "offset_param", "limit", "page_param", "start", "size_param", "size", "cursor_param", "cursor_path", "next_url_path", "items", "stop_when_empty", "max_pages"],
                optional: true);
            if (obj is null)
            {
                return null;
            }
            var type = Str(obj, "type", ptr, required: true) ?? "offset";
            if (!PaginateTypes.Contains(type))
            {
                Error($"{ptr}/type", $"Unknown pagination type '{type}'; expected one of {string.Join(", ", PaginateTypes)}.");
            }
            var spec = new PaginateSpec(type)
            {
                LimitParam = Str(obj, "limit_param", ptr, false) ?? "limit",
                OffsetParam = Str(obj, "offset_param", ptr, false) ?? "offset",
                Limit = Int(obj, "limit", ptr, false),
                PageParam = Str(obj, "page_param", ptr, false) ?? "page",
                Start = Int(obj, "start", ptr, false) ?? 1,
                SizeParam = Str(obj, "size_param", ptr, false),
                Size = Int(obj, "size", ptr, false),
                CursorParam = Str(obj, "cursor_param", ptr, type == "cursor"),
                CursorPath = Str(obj, "cursor_path", ptr, type == "cursor"),
                NextUrlPath = Str(obj, "next_url_path", ptr, type == "next_url"),
                Items = Str(obj, "items", ptr, false),
                StopWhenEmpty = Bool(obj, "stop_when_empty", ptr) ?? true,
                MaxPages = Int(obj, "max_pages", ptr, false),
            };
            if (type == "offset" && spec.Limit is null)
            {
                Error($"{ptr}/limit", "Offset pagination needs 'limit' (the page size).");
            }
            if (spec.Limit is < 1 || spec.Size is < 1 || spec.MaxPages is < 1)
            {
                Error(ptr, "'limit', 'size' and 'max_pages' must be at least 1.");
            }
            JsonPath(spec.CursorPath, $"{ptr}/cursor_path");
            JsonPath(spec.NextUrlPath, $"{ptr}/next_url_path");
            if (spec.Items is not null && !extract.ContainsKey(spec.Items))
            {
                Error($"{ptr}/items", $"'items' names '{spec.Items}', which is not one of this step's extractions ({string.Join(", ", extract.Keys)}).");
            }
            if (spec.Items is null && extract.Count > 1)
            {
                Error($"{ptr}/items", "'items' is required when the step extracts more than one value: name the extraction that accumulates across pages.");
            }
            return spec with { Items = spec.Items ?? extract.Keys.FirstOrDefault() };
        }

        private RequestSpec? Request(JsonNode? node, string ptr, StepScope scope)
        {
            var obj = Obj(node, ptr, ["method", "path", "url", "query", "headers", "body"]);
            if (obj is null)
            {
                return null;
            }
            var method = (Str(obj, "method", ptr, required: false) ?? "GET").ToUpperInvariant();
            if (!Methods.Contains(method))
            {
                Error($"{ptr}/method", $"Unknown HTTP method '{method}'.");
            }
            var path = Str(obj, "path", ptr, required: false);
            var url = Str(obj, "url", ptr, required: false);
            if ((path is null) == (url is null))
            {
                Error(ptr, "A request needs exactly one of 'path' (relative to base_url) or 'url' (absolute).");
            }
            Template(path, $"{ptr}/path", scope);
            Template(url, $"{ptr}/url", scope);
            BodySpec? body = null;
            if (Obj(obj["body"], $"{ptr}/body", ["json", "form", "text"], optional: true) is { } bodyObj)
            {
                if (bodyObj.Count != 1)
                {
                    Error($"{ptr}/body", "A body has exactly one of 'json', 'form' or 'text'.");
                }
                var json = bodyObj["json"];
                TemplateTree(json, $"{ptr}/body/json", scope);
                var form = bodyObj.ContainsKey("form") ? StrMap(bodyObj, "form", $"{ptr}/body", scope) : null;
                var text = Str(bodyObj, "text", $"{ptr}/body", required: false);
                Template(text, $"{ptr}/body/text", scope);
                body = new BodySpec(json?.DeepClone(), form, text);
            }
            return new RequestSpec(method)
            {
                Path = path,
                Url = url,
                Query = StrMap(obj, "query", ptr, scope),
                Headers = StrMap(obj, "headers", ptr, scope),
                Body = body,
            };
        }

        private Dictionary<string, string> Extract(JsonObject parent, string ptr)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Obj(parent["extract"], $"{ptr}/extract", null, optional: true) is not { } obj)
            {
                return result;
            }
            foreach (var (name, value) in obj)
            {
                var p = $"{ptr}/extract/{Escape(name)}";
                if (!Identifier().IsMatch(name))
                {
                    Error(p, $"Extraction name '{name}' must be an identifier (letters, digits, '_', '-').");
                }
                if (value is JsonValue v && v.TryGetValue<string>(out var path))
                {
                    JsonPath(path, p);
                    result[name] = path;
                }
                else
                {
                    Error(p, $"An extraction is a JSONPath string, not {Kind(value)}.");
                }
            }
            return result;
        }
    }
}
