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
            if (Obj(node) is not { } obj)
            {
                return null;
            }
            var id = Str(obj, "id") ?? $"step{index}";
            var scope = new StepScope(index, true);
            var when = Str(obj, "when");
            Template(when, $"{ptr}/when", scope with { SecretsAllowed = false });
            var forEach = Str(obj, "for_each");
            if (forEach is not null && ForEachReference().Match(forEach) is { Success: true } reference)
            {
                StepRef(reference.Groups[1].Value, reference.Groups[2].Value, $"{ptr}/for_each", scope);
            }
            var concurrency = Int(obj, "concurrency");
            var request = Request(obj["request"], $"{ptr}/request", scope);
            var extract = Extract(obj, ptr);
            var paginate = Paginate(obj, ptr, extract);
            var retry = Obj(obj["retry"]) is { } retryObj
                ? new RetrySpec(Int(retryObj, "max_attempts"), IntList(retryObj, "on_status"), Bool(retryObj, "idempotent") ?? false)
                : null;
            var timeout = Int(obj, "timeout_seconds");
            var errorWhen = Str(obj, "error_when");
            JsonPath(errorWhen, $"{ptr}/error_when");
            var expect = IntList(obj, "expect_status");
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
            if (Obj(step["paginate"]) is not { } obj)
            {
                return null;
            }
            var spec = new PaginateSpec(Str(obj, "type") ?? "offset")
            {
                LimitParam = Str(obj, "limit_param") ?? "limit",
                OffsetParam = Str(obj, "offset_param") ?? "offset",
                Limit = Int(obj, "limit"),
                PageParam = Str(obj, "page_param") ?? "page",
                Start = Int(obj, "start") ?? 1,
                SizeParam = Str(obj, "size_param"),
                Size = Int(obj, "size"),
                CursorParam = Str(obj, "cursor_param"),
                CursorPath = Str(obj, "cursor_path"),
                NextUrlPath = Str(obj, "next_url_path"),
                Items = Str(obj, "items"),
                Accumulate = StrList(obj, "accumulate"),
                StopWhenEmpty = Bool(obj, "stop_when_empty") ?? true,
                MaxPages = Int(obj, "max_pages"),
            };
            JsonPath(spec.CursorPath, $"{ptr}/cursor_path");
            JsonPath(spec.NextUrlPath, $"{ptr}/next_url_path");
            if (spec.Items is not null && !extract.ContainsKey(spec.Items))
            {
                Error($"{ptr}/items", $"'items' names '{spec.Items}', which is not one of this step's extractions ({string.Join(", ", extract.Keys)}).");
            }
            foreach (var name in spec.Accumulate.Where(n => !extract.ContainsKey(n)))
            {
                Error($"{ptr}/accumulate", $"'accumulate' names '{name}', which is not one of this step's extractions ({string.Join(", ", extract.Keys)}).");
            }
            if (spec.Items is null && extract.Count > 1)
            {
                Error($"{ptr}/items", "'items' is required when the step extracts more than one value: name the extraction that accumulates across pages.");
            }
            return spec with { Items = spec.Items ?? extract.Keys.FirstOrDefault() };
        }

        private RequestSpec? Request(JsonNode? node, string ptr, StepScope scope)
        {
            if (Obj(node) is not { } obj)
            {
                return null;
            }
            var method = (Str(obj, "method") ?? "GET").ToUpperInvariant();
            var path = Str(obj, "path");
            var url = Str(obj, "url");
            if ((path is null) == (url is null))
            {
                Error(ptr, "A request needs exactly one of 'path' (relative to base_url) or 'url' (absolute).");
            }
            Template(path, $"{ptr}/path", scope);
            Template(url, $"{ptr}/url", scope);
            BodySpec? body = null;
            if (Obj(obj["body"]) is { } bodyObj)
            {
                var json = bodyObj["json"];
                TemplateTree(json, $"{ptr}/body/json", scope);
                var form = bodyObj.ContainsKey("form") ? StrMap(bodyObj, "form", $"{ptr}/body", scope) : null;
                var text = Str(bodyObj, "text");
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
            if (Obj(parent["extract"]) is not { } obj)
            {
                return result;
            }
            foreach (var (name, value) in obj)
            {
                if (value is JsonValue v && v.TryGetValue<string>(out var path))
                {
                    JsonPath(path, $"{ptr}/extract/{Escape(name)}");
                    result[name] = path;
                }
            }
            return result;
        }
    }
}
