using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Templating;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Plugboard.Engine.Manifests;

public sealed record ManifestParseResult(Manifest? Manifest, IReadOnlyList<ManifestIssue> Issues, JsonNode? Json)
{
    /// <summary>The text was refused before it was read whole: it exceeds <see cref="ManifestLimits"/> or uses anchors/aliases.</summary>
    public bool Refused { get; init; }

    public bool IsValid => Manifest is not null && Issues.Count == 0;
}

/// <summary>
/// Parses and validates manifests. Text may be YAML or JSON (detected); every issue names the JSON pointer of the
/// offending value and, for text input, its line and column.
/// </summary>
public static partial class ManifestParser
{
    /// <summary>Parses YAML or JSON text. <paramref name="root"/> is an optional JSON pointer to the manifest inside the
    /// document (e.g. <c>/manifest</c> for a template file); issue pointers are relative to it, lines to the file.</summary>
    public static ManifestParseResult Parse(string text, string? root = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var marks = new Dictionary<string, Mark>(StringComparer.Ordinal);
        JsonNode? json;
        try
        {
            json = YamlToJson.Convert(text, marks);
        }
        catch (ManifestLimitException limit)
        {
            return Fail(new ManifestIssue(limit.Pointer, limit.Message, (int)limit.Start.Line, (int)limit.Start.Column)) with { Refused = true };
        }
        catch (YamlException yaml)
        {
            var trimmed = text.TrimStart();
            if (trimmed.StartsWith('{') || trimmed.StartsWith('['))
            {
                try
                {
                    json = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
                    marks.Clear();
                }
                catch (JsonException ex)
                {
                    return Fail(new ManifestIssue("", $"Invalid JSON: {ex.Message}", (int?)ex.LineNumber + 1, (int?)ex.BytePositionInLine + 1));
                }
            }
            else
            {
                return Fail(new ManifestIssue("", $"Invalid YAML: {yaml.InnerException?.Message ?? yaml.Message}", (int)yaml.Start.Line, (int)yaml.Start.Column));
            }
        }
        var prefix = root?.TrimEnd('/') ?? "";
        if (prefix.Length > 0)
        {
            foreach (var segment in prefix.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var key = segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                json = json is JsonObject o && o.TryGetPropertyValue(key, out var child) ? child : null;
            }
            if (json is null)
            {
                return Fail(new ManifestIssue("", $"The document has no manifest at '{prefix}'."));
            }
        }
        return Validate(json, pointer => FindMark(marks, prefix + pointer));
    }

    /// <summary>A YAML or JSON document as JSON, under the same limits as a manifest (no anchors or aliases, bounded size,
    /// depth and node count); a <see cref="FormatException"/> says what is wrong and where.</summary>
    public static JsonNode? ReadDocument(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            return YamlToJson.Convert(text, new Dictionary<string, Mark>(StringComparer.Ordinal));
        }
        catch (YamlException yaml)
        {
            throw new FormatException($"line {yaml.Start.Line}, column {yaml.Start.Column}: {yaml.InnerException?.Message ?? yaml.Message}", yaml);
        }
    }

    /// <summary>A manifest, or a template file (templates/*.yaml) whose <c>manifest:</c> holds the connector: the one
    /// reading the CLI (`manifest validate`, `run`) and <c>POST /v1/manifests/validate</c> share.</summary>
    public static ManifestParseResult ParseFile(string text) =>
        TemplateFilePattern().IsMatch(text) ? Parse(text, "/manifest") : Parse(text);

    [GeneratedRegex(@"(?m)^manifest\s*:|^\s*\{[\s\S]*""manifest""\s*:")]
    private static partial Regex TemplateFilePattern();

    /// <summary>Validates a manifest already held as JSON (e.g. stored in the database).</summary>
    public static ManifestParseResult Parse(JsonNode? json) => Validate(json, _ => null);

    private static ManifestParseResult Fail(ManifestIssue issue) => new(null, [issue], null);

    private static Mark? FindMark(Dictionary<string, Mark> marks, string pointer)
    {
        // The value itself, or the closest ancestor that exists (for missing fields).
        while (true)
        {
            if (marks.TryGetValue(pointer, out var mark))
            {
                return mark;
            }
            if (pointer.Length == 0)
            {
                return null;
            }
            pointer = pointer[..pointer.LastIndexOf('/')];
        }
    }

    private static ManifestParseResult Validate(JsonNode? json, Func<string, Mark?> locate)
    {
        var validator = new Validator(locate);
        var manifest = validator.Run(json);
        foreach (var issue in LiteralSecretScanner.Scan(json))
        {
            validator.Error(issue.Pointer, issue.Message);
        }
        var issues = validator.Issues;
        return new ManifestParseResult(issues.Count == 0 ? manifest : null, issues, json);
    }

    internal static bool IsMultiPath(string path) =>
        path.Contains("[*]", StringComparison.Ordinal) || path.Contains("..", StringComparison.Ordinal) || path.Contains("[?", StringComparison.Ordinal)
        || path.Contains(".*", StringComparison.Ordinal) || MultiIndex().IsMatch(path);

    internal static string? CheckJsonPath(string path)
    {
        if (!path.StartsWith('$'))
        {
            return "a JSONPath must start with '$'";
        }
        try
        {
            _ = new JObject().SelectTokens(path).ToList();
            return null;
        }
        catch (Newtonsoft.Json.JsonException ex)
        {
            return ex.Message;
        }
    }

    [GeneratedRegex(@"\[[^\]]*[,:][^\]]*\]")]
    private static partial Regex MultiIndex();

    [GeneratedRegex(@"\{\{.*?\}\}|\{%.*?%\}", RegexOptions.Singleline)]
    internal static partial Regex TemplateTag();

    [GeneratedRegex(@"\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_\-]*)|\[\s*['""]([^'""]+)['""]\s*\])(?:\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_\-]*)|\[\s*['""]([^'""]+)['""]\s*\]))?")]
    internal static partial Regex StepReference();

    [GeneratedRegex(@"^\s*(?:\{\{\s*)?steps\.([A-Za-z_][A-Za-z0-9_\-]*)\.([A-Za-z_][A-Za-z0-9_\-]*)(?:\s*\}\})?\s*$")]
    internal static partial Regex ForEachReference();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_\-]*$")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"(?<![.\w])(credentials|session)\b")]
    private static partial Regex SecretReference();

    internal readonly record struct Mark(int Line, int Column);

    private sealed class Validator(Func<string, Mark?> locate)
    {
        private static readonly string[] ParamTypes = ["string", "number", "integer", "boolean", "object", "array"];
        private static readonly string[] AuthTypes = ["none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token", "session"];
        private static readonly string[] PaginateTypes = ["offset", "page", "cursor", "link", "next_url"];
        private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

        private readonly Dictionary<string, (int Index, HashSet<string> Extractions)> _steps = new(StringComparer.Ordinal);

        public List<ManifestIssue> Issues { get; } = [];

        public void Error(string pointer, string message)
        {
            var mark = locate(pointer);
            Issues.Add(new ManifestIssue(pointer, message, mark?.Line, mark?.Column));
        }

        public Manifest? Run(JsonNode? json)
        {
            var root = Obj(json, "", ["version", "base_url", "allowed_hosts", "auth", "inputs", "config", "steps", "output"]);
            if (root is null)
            {
                return null;
            }
            var version = Int(root, "version", "", required: true);
            if (version is not null and not 1)
            {
                Error("/version", $"Unknown manifest version {version}; this engine supports version 1.");
            }
            var baseUrl = Str(root, "base_url", "", required: true) ?? "";
            Template(baseUrl, "/base_url", StepScope.None with { SecretsAllowed = false });
            var allowedHosts = StrList(root, "allowed_hosts", "");
            var inputs = Params(root, "inputs");
            var config = Params(root, "config");

            // First pass: step ids and their extraction names, so references can be checked in any order.
            var stepNodes = root.TryGetPropertyValue("steps", out var stepsNode) ? stepsNode as JsonArray : null;
            if (stepsNode is null)
            {
                Error("/steps", "'steps' is required and must list at least one step.");
            }
            else if (stepNodes is null)
            {
                Error("/steps", $"'steps' must be an array, not {Kind(stepsNode)}.");
            }
            else if (stepNodes.Count == 0)
            {
                Error("/steps", "'steps' must list at least one step.");
            }
            for (var i = 0; stepNodes is not null && i < stepNodes.Count; i++)
            {
                if (stepNodes[i] is JsonObject s && s["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var id))
                {
                    var extractions = s["extract"] is JsonObject e ? e.Select(p => p.Key).ToHashSet(StringComparer.Ordinal) : [];
                    if (!_steps.TryAdd(id, (i, extractions)))
                    {
                        Error($"/steps/{i}/id", $"Duplicate step id '{id}' (first used by /steps/{_steps[id].Index}).");
                    }
                }
            }
            var auth = Auth(root);
            var steps = new List<StepSpec>();
            for (var i = 0; stepNodes is not null && i < stepNodes.Count; i++)
            {
                if (Step(stepNodes[i], i) is { } step)
                {
                    steps.Add(step);
                }
            }
            JsonNode? output = null;
            if (root.TryGetPropertyValue("output", out var outputNode))
            {
                output = outputNode?.DeepClone();
                TemplateTree(outputNode, "/output", new StepScope(int.MaxValue, true) { SecretsAllowed = false });
            }
            return new Manifest(version ?? 0, baseUrl, allowedHosts, auth, inputs, config, steps, output);
        }

        private AuthSpec Auth(JsonObject root)
        {
            if (!root.TryGetPropertyValue("auth", out var node) || node is null)
            {
                return AuthSpec.None;
            }
            if (node is not JsonObject obj)
            {
                Error("/auth", $"'auth' must be an object, not {Kind(node)}.");
                return AuthSpec.None;
            }
            var type = Str(obj, "type", "/auth", required: true) ?? "none";
            string[] allowed = type switch
            {
                "none" => ["type"],
                "api_key" => ["type", "in", "name", "value"],
                "bearer" => ["type", "token"],
                "basic" => ["type", "username", "password"],
                "oauth2_client_credentials" => ["type", "token_url", "client_id", "client_secret", "scopes", "audience", "client_auth"],
                "oauth2_refresh_token" => ["type", "token_url", "client_id", "client_secret", "refresh_token", "scopes", "client_auth"],
                "session" => ["type", "login", "apply"],
                _ => [],
            };
            if (!AuthTypes.Contains(type))
            {
                Error("/auth/type", $"Unknown auth type '{type}'; expected one of {string.Join(", ", AuthTypes)}.");
                return AuthSpec.None;
            }
            Keys(obj, "/auth", allowed);
            var scope = StepScope.None;
            string? T(string key, bool required)
            {
                var value = Str(obj, key, "/auth", required);
                Template(value, $"/auth/{key}", scope);
                return value;
            }
            var spec = new AuthSpec(type);
            switch (type)
            {
                case "api_key":
                    var where = Str(obj, "in", "/auth", required: false) ?? "header";
                    if (where is not ("header" or "query"))
                    {
                        Error("/auth/in", $"'in' must be 'header' or 'query', not '{where}'.");
                    }
                    return spec with { In = where, Name = T("name", true), Value = T("value", true) };
                case "bearer":
                    return spec with { Token = T("token", true) };
                case "basic":
                    return spec with { Username = T("username", true), Password = T("password", false) };
                case "oauth2_client_credentials":
                case "oauth2_refresh_token":
                    var clientAuth = Str(obj, "client_auth", "/auth", required: false) ?? "body";
                    if (clientAuth is not ("body" or "basic"))
                    {
                        Error("/auth/client_auth", $"'client_auth' must be 'body' or 'basic', not '{clientAuth}'.");
                    }
                    return spec with
                    {
                        TokenUrl = T("token_url", true),
                        ClientId = T("client_id", true),
                        ClientSecret = T("client_secret", type == "oauth2_client_credentials"),
                        RefreshToken = type == "oauth2_refresh_token" ? T("refresh_token", true) : null,
                        Scopes = StrList(obj, "scopes", "/auth"),
                        Audience = type == "oauth2_client_credentials" ? T("audience", false) : null,
                        ClientAuth = clientAuth,
                    };
                case "session":
                    var login = Obj(obj["login"], "/auth/login", ["request", "extract"]);
                    if (login is null)
                    {
                        return spec;
                    }
                    var request = Request(login["request"], "/auth/login/request", scope) ?? new RequestSpec("POST");
                    var extract = Extract(login, "/auth/login");
                    if (extract.Count == 0)
                    {
                        Error("/auth/login/extract", "A session login must extract at least one value (e.g. token: \"$.token\").");
                    }
                    var apply = Obj(obj["apply"], "/auth/apply", ["headers", "query"]);
                    var headers = apply is null ? new Dictionary<string, string>() : StrMap(apply, "headers", "/auth/apply", scope);
                    var query = apply is null ? new Dictionary<string, string>() : StrMap(apply, "query", "/auth/apply", scope);
                    return spec with { Session = new SessionSpec(request, extract, headers, query) };
                default:
                    return spec;
            }
        }

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

        private Dictionary<string, ParameterSpec> Params(JsonObject root, string key)
        {
            var result = new Dictionary<string, ParameterSpec>(StringComparer.Ordinal);
            if (Obj(root[key], $"/{key}", null, optional: true) is not { } obj)
            {
                return result;
            }
            foreach (var (name, node) in obj)
            {
                var ptr = $"/{key}/{Escape(name)}";
                if (Obj(node, ptr, ["type", "required", "default", "description"]) is not { } spec)
                {
                    continue;
                }
                var type = Str(spec, "type", ptr, required: false) ?? "string";
                if (!ParamTypes.Contains(type))
                {
                    Error($"{ptr}/type", $"Unknown type '{type}'; expected one of {string.Join(", ", ParamTypes)}.");
                }
                var required = Bool(spec, "required", ptr) ?? false;
                var hasDefault = spec.TryGetPropertyValue("default", out var def);
                if (hasDefault && def is not null && !ManifestArguments.Matches(type, def))
                {
                    Error($"{ptr}/default", $"The default of '{name}' is {Kind(def)}, but its type is {type}.");
                }
                result[name] = new ParameterSpec(type, required, def?.DeepClone(), Str(spec, "description", ptr, required: false));
            }
            return result;
        }

        private void TemplateTree(JsonNode? node, string ptr, StepScope scope)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, child) in obj)
                    {
                        TemplateTree(child, $"{ptr}/{Escape(key)}", scope);
                    }
                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        TemplateTree(array[i], $"{ptr}/{i}", scope);
                    }
                    break;
                case JsonValue value when value.TryGetValue<string>(out var text):
                    Template(text, ptr, scope);
                    break;
            }
        }

        /// <param name="SecretsAllowed">False where a value rendered from a secret would leave the credential hosts'
        /// protection: base_url (its host receives credentials; a secret in it reaches DNS), when (a condition on a
        /// secret leaks it bit by bit through which requests follow) and output (readable by every member, and filters
        /// can disguise a secret from the redactor).</param>
        private readonly record struct StepScope(int Index, bool StepsAllowed)
        {
            public bool SecretsAllowed { get; init; } = true;

            public static StepScope None => new(-1, false);
        }

        private void Template(string? source, string ptr, StepScope scope)
        {
            if (source is null)
            {
                return;
            }
            if (!TemplateEngine.TryCompile(source, out _, out var error))
            {
                Error(ptr, $"Template syntax error: {error}");
                return;
            }
            if (!scope.SecretsAllowed && TemplateTag().Matches(source).Any(tag => SecretReference().IsMatch(tag.Value)))
            {
                Error(ptr, "This value cannot read credentials or session: base_url, when and output must not depend on secrets " +
                           "(put values that are not secret, such as a subdomain, in config).");
            }
            foreach (Match tag in TemplateTag().Matches(source))
            {
                foreach (Match reference in StepReference().Matches(tag.Value))
                {
                    var id = reference.Groups[1].Success ? reference.Groups[1].Value : reference.Groups[2].Value;
                    var field = reference.Groups[3].Success ? reference.Groups[3].Value : reference.Groups[4].Success ? reference.Groups[4].Value : null;
                    if (!scope.StepsAllowed)
                    {
                        Error(ptr, $"This value is rendered before any step runs, so it cannot reference steps.{id}.");
                        continue;
                    }
                    StepRef(id, field, ptr, scope);
                }
            }
        }

        private void StepRef(string id, string? field, string ptr, StepScope scope)
        {
            if (!_steps.TryGetValue(id, out var target))
            {
                Error(ptr, $"References unknown step '{id}'" + (_steps.Count > 0 ? $" (steps are: {string.Join(", ", _steps.Keys)})." : "."));
                return;
            }
            if (target.Index == scope.Index)
            {
                Error(ptr, $"Step '{id}' references itself (a cycle); a step may only use the results of earlier steps.");
                return;
            }
            if (target.Index > scope.Index)
            {
                Error(ptr, $"References step '{id}', which runs later (forward reference); a step may only use the results of earlier steps, so cycles are impossible.");
                return;
            }
            if (field is not null && !target.Extractions.Contains(field))
            {
                Error(ptr, $"Step '{id}' has no extraction '{field}'" + (target.Extractions.Count > 0 ? $" (it extracts: {string.Join(", ", target.Extractions)})." : "."));
            }
        }

        private void JsonPath(string? path, string ptr)
        {
            if (path is not null && CheckJsonPath(path) is { } error)
            {
                Error(ptr, $"Invalid JSONPath '{path}': {error}");
            }
        }

        private JsonObject? Obj(JsonNode? node, string ptr, string[]? allowed, bool optional = false)
        {
            if (node is null)
            {
                if (!optional)
                {
                    Error(ptr, $"Expected an object at '{(ptr.Length == 0 ? "/" : ptr)}'.");
                }
                return null;
            }
            if (node is not JsonObject obj)
            {
                Error(ptr, $"Expected an object, found {Kind(node)}.");
                return null;
            }
            if (allowed is not null)
            {
                Keys(obj, ptr, allowed);
            }
            return obj;
        }

        private void Keys(JsonObject obj, string ptr, string[] allowed)
        {
            foreach (var (key, _) in obj)
            {
                if (!allowed.Contains(key))
                {
                    Error($"{ptr}/{Escape(key)}", $"Unknown field '{key}'; allowed here: {string.Join(", ", allowed)}.");
                }
            }
        }

        private string? Str(JsonObject obj, string key, string ptr, bool required)
        {
            if (!obj.TryGetPropertyValue(key, out var node) || node is null)
            {
                if (required)
                {
                    Error($"{ptr}/{key}", $"'{key}' is required.");
                }
                return null;
            }
            if (node is JsonValue v && v.TryGetValue<string>(out var s))
            {
                return s;
            }
            Error($"{ptr}/{key}", $"'{key}' must be a string, not {Kind(node)}.");
            return null;
        }

        private int? Int(JsonObject obj, string key, string ptr, bool required)
        {
            if (!obj.TryGetPropertyValue(key, out var node) || node is null)
            {
                if (required)
                {
                    Error($"{ptr}/{key}", $"'{key}' is required.");
                }
                return null;
            }
            if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && int.TryParse(v.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i))
            {
                return i;
            }
            Error($"{ptr}/{key}", $"'{key}' must be an integer, not {Kind(node)}.");
            return null;
        }

        private bool? Bool(JsonObject obj, string key, string ptr)
        {
            if (!obj.TryGetPropertyValue(key, out var node) || node is null)
            {
                return null;
            }
            if (node is JsonValue v && v.TryGetValue<bool>(out var b))
            {
                return b;
            }
            Error($"{ptr}/{key}", $"'{key}' must be true or false, not {Kind(node)}.");
            return null;
        }

        private List<string> StrList(JsonObject obj, string key, string ptr)
        {
            var result = new List<string>();
            if (!obj.TryGetPropertyValue(key, out var node) || node is null)
            {
                return result;
            }
            if (node is not JsonArray array)
            {
                Error($"{ptr}/{key}", $"'{key}' must be a list of strings, not {Kind(node)}.");
                return result;
            }
            for (var i = 0; i < array.Count; i++)
            {
                if (array[i] is JsonValue v && v.TryGetValue<string>(out var s))
                {
                    result.Add(s);
                }
                else
                {
                    Error($"{ptr}/{key}/{i}", $"Expected a string, found {Kind(array[i])}.");
                }
            }
            return result;
        }

        private List<int>? IntList(JsonObject obj, string key, string ptr)
        {
            if (!obj.TryGetPropertyValue(key, out var node) || node is null)
            {
                return null;
            }
            if (node is not JsonArray array)
            {
                Error($"{ptr}/{key}", $"'{key}' must be a list of HTTP status codes, not {Kind(node)}.");
                return null;
            }
            var result = new List<int>();
            for (var i = 0; i < array.Count; i++)
            {
                if (array[i] is JsonValue v && v.TryGetValue<int>(out var code) && code is >= 100 and <= 599)
                {
                    result.Add(code);
                }
                else
                {
                    Error($"{ptr}/{key}/{i}", $"Expected an HTTP status code (100-599), found {array[i]?.ToJsonString() ?? "null"}.");
                }
            }
            return result;
        }

        /// <summary>A map of templated strings (query, headers, form). Numbers and booleans are accepted as their text.</summary>
        private Dictionary<string, string> StrMap(JsonObject obj, string key, string ptr, StepScope scope)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Obj(obj[key], $"{ptr}/{key}", null, optional: true) is not { } map)
            {
                return result;
            }
            foreach (var (name, value) in map)
            {
                var p = $"{ptr}/{key}/{Escape(name)}";
                if (value is JsonValue v && v.GetValueKind() is JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False)
                {
                    var text = v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString();
                    Template(text, p, scope);
                    result[name] = text;
                }
                else
                {
                    Error(p, $"Expected a string, found {Kind(value)}.");
                }
            }
            return result;
        }

        private static string Kind(JsonNode? node) => node switch
        {
            null => "null",
            JsonObject => "an object",
            JsonArray => "an array",
            JsonValue v => v.GetValueKind() switch
            {
                JsonValueKind.String => "a string",
                JsonValueKind.Number => "a number",
                JsonValueKind.True or JsonValueKind.False => "a boolean",
                _ => "null",
            },
            _ => "a value",
        };
    }

    internal static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    /// <summary>
    /// YAML (or JSON, which is YAML) to JSON nodes in one pass over the parser's events, recording each node's line and
    /// column by JSON pointer. Anchors and aliases are refused (an alias would make one node count many times: the
    /// "billion laughs"), and nesting depth and node count are capped, so any input is refused in bounded time and memory.
    /// </summary>
    private static partial class YamlToJson
    {
        private sealed class Frame(JsonNode container, string pointer)
        {
            public JsonNode Container { get; } = container;
            public string Pointer { get; } = pointer;
            public string? Key { get; set; }
            public int Index { get; set; }
        }

        public static JsonNode? Convert(string text, Dictionary<string, Mark> marks)
        {
            if (text.Length > ManifestLimits.MaxTextChars)
            {
                throw new ManifestLimitException(Start, "", $"The manifest is {text.Length} characters long, more than the limit of {ManifestLimits.MaxTextChars}.");
            }
            var parser = new Parser(new StringReader(text));
            var stack = new Stack<Frame>();
            JsonNode? root = null;
            var documents = 0;
            var nodes = 0;
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                switch (current)
                {
                    case DocumentStart when ++documents > 1:
                        throw new YamlException(current.Start, current.End, "Expected a single YAML document.");
                    case AnchorAlias:
                        throw new ManifestLimitException(current.Start, PointerOf(stack), "Aliases are not supported in manifests: write the value out in full.");
                    case NodeEvent { Anchor.IsEmpty: false }:
                        throw new ManifestLimitException(current.Start, PointerOf(stack), "Anchors (&name) are not supported in manifests: write the value out in full.");
                    case MappingEnd or SequenceEnd:
                        var done = stack.Pop();
                        if (stack.Count == 0)
                        {
                            root = done.Container;
                        }
                        continue;
                    case Scalar key when stack.TryPeek(out var map) && map.Container is JsonObject && map.Key is null:
                        map.Key = key.Value ?? "";
                        if (((JsonObject)map.Container).ContainsKey(map.Key))
                        {
                            throw new YamlException(current.Start, current.End, $"Duplicate key '{map.Key}'.");
                        }
                        continue;
                    case MappingStart or SequenceStart when stack.TryPeek(out var parent) && parent.Container is JsonObject && parent.Key is null:
                        throw new YamlException(current.Start, current.End, "Mapping keys must be plain values.");
                }
                if (current is not (Scalar or MappingStart or SequenceStart))
                {
                    continue;
                }
                if (++nodes > ManifestLimits.MaxNodes)
                {
                    throw new ManifestLimitException(current.Start, PointerOf(stack), $"The manifest has more than {ManifestLimits.MaxNodes} values.");
                }
                var pointer = PointerOf(stack);
                stack.TryPeek(out var owner);
                marks[pointer] = new Mark((int)current.Start.Line, (int)current.Start.Column);
                JsonNode? node = current switch
                {
                    Scalar scalar => ScalarValue(scalar),
                    MappingStart => new JsonObject(),
                    _ => new JsonArray(),
                };
                if (owner is not null)
                {
                    if (owner.Container is JsonObject obj)
                    {
                        obj[owner.Key!] = node;
                        owner.Key = null;
                    }
                    else
                    {
                        ((JsonArray)owner.Container).Add(node);
                        owner.Index++;
                    }
                }
                if (current is MappingStart or SequenceStart)
                {
                    if (stack.Count >= ManifestLimits.MaxDepth)
                    {
                        throw new ManifestLimitException(current.Start, pointer, $"The manifest nests deeper than {ManifestLimits.MaxDepth} levels.");
                    }
                    stack.Push(new Frame(node!, pointer));
                }
                else if (owner is null)
                {
                    root = node;
                }
            }
            return root;
        }

        private static readonly YamlDotNet.Core.Mark Start = new(0, 1, 1);

        /// <summary>Where the next value of the innermost open mapping or sequence would go.</summary>
        private static string PointerOf(Stack<Frame> stack) =>
            !stack.TryPeek(out var owner) ? ""
            : owner.Container is JsonObject ? $"{owner.Pointer}/{Escape(owner.Key ?? "")}" : $"{owner.Pointer}/{owner.Index}";

        private static JsonNode? ScalarValue(Scalar scalar)
        {
            var value = scalar.Value ?? "";
            var tag = scalar.Tag.IsEmpty ? null : scalar.Tag.Value;
            if (scalar.Style != ScalarStyle.Plain || tag == "tag:yaml.org,2002:str")
            {
                return JsonValue.Create(value);
            }
            if (value is "" or "~" or "null" or "Null" or "NULL")
            {
                return null;
            }
            if (value is "true" or "True" or "TRUE")
            {
                return JsonValue.Create(true);
            }
            if (value is "false" or "False" or "FALSE")
            {
                return JsonValue.Create(false);
            }
            if (IntPattern().IsMatch(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                return JsonValue.Create(l);
            }
            if (FloatPattern().IsMatch(value) && decimal.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            {
                return JsonValue.Create(d);
            }
            return JsonValue.Create(value);
        }

        [GeneratedRegex(@"^[-+]?[0-9]+$")]
        private static partial Regex IntPattern();

        [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
        private static partial Regex FloatPattern();
    }
}
