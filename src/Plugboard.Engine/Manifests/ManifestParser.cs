using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using YamlDotNet.Core;

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
                    // The limits YAML reading enforces, checked on the tokens before any node is built.
                    if (JsonLimitBroken(text) is { } broken)
                    {
                        return Fail(new ManifestIssue("", broken, null, null)) with { Refused = true };
                    }
                    json = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions
                    {
                        AllowTrailingCommas = true,
                        CommentHandling = JsonCommentHandling.Skip,
                        MaxDepth = ManifestLimits.MaxDepth + 1,
                        AllowDuplicateProperties = false,
                    });
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
        foreach (var (pointer, message) in ManifestSchema.Check(json))
        {
            validator.Error(pointer, message);
        }
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

    // A slice ([0:2]) or a union ([0,1], ['a','b']); one quoted name (['dc:creator']) is neither.
    [GeneratedRegex(@"\[(?!\s*'[^']*'\s*\]|\s*""[^""]*""\s*\])[^\]]*[,:][^\]]*\]")]
    private static partial Regex MultiIndex();

    [GeneratedRegex(@"\{\{.*?\}\}|\{%.*?%\}", RegexOptions.Singleline)]
    internal static partial Regex TemplateTag();

    [GeneratedRegex(@"\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_\-]*)|\[\s*['""]([^'""]+)['""]\s*\])(?:\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_\-]*)|\[\s*['""]([^'""]+)['""]\s*\]))?")]
    internal static partial Regex StepReference();

    [GeneratedRegex(@"^\s*(?:\{\{\s*)?steps\.([A-Za-z_][A-Za-z0-9_\-]*)\.([A-Za-z_][A-Za-z0-9_\-]*)(?:\s*\}\})?\s*$")]
    internal static partial Regex ForEachReference();

    [GeneratedRegex(@"(?<![.\w])(credentials|session)\b")]
    private static partial Regex SecretReference();

    internal readonly record struct Mark(int Line, int Column);

    internal static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    /// <summary>Which limit of YAML reading (depth, number of values) a JSON text breaks, or null; a text that is not
    /// JSON is left to the parser, which reports where.</summary>
    private static string? JsonLimitBroken(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        // The reader keeps its depth in a bit stack, not on the call stack: any depth is safe to scan.
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = bytes.Length + 1 });
        var values = 0;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && reader.CurrentDepth >= ManifestLimits.MaxDepth)
                {
                    return $"The manifest nests deeper than {ManifestLimits.MaxDepth} levels.";
                }
                if (reader.TokenType is not (JsonTokenType.PropertyName or JsonTokenType.EndObject or JsonTokenType.EndArray) && ++values > ManifestLimits.MaxNodes)
                {
                    return $"The manifest has more than {ManifestLimits.MaxNodes} values.";
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }
        return null;
    }
}
