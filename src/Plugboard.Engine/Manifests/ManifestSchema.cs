using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace Plugboard.Engine.Manifests;

/// <summary>
/// The JSON Schema (draft 2020-12) of manifests and template files: served to editors and the API, and the one
/// definition of a manifest's structure (fields, types, required fields, enumerations, ranges, patterns) that the
/// parser checks with JsonSchema.Net. What a schema cannot say (references between steps, templates, JSONPath
/// syntax, literal secrets) the parser checks in code.
/// </summary>
public static class ManifestSchema
{
    private const string Id = "https://plugboard.dev/schemas/manifest.schema.json";

    private static readonly Lazy<string> Text = new(() =>
    {
        using var stream = typeof(ManifestSchema).Assembly.GetManifestResourceStream("Plugboard.Engine.Manifests.manifest.schema.json")
                           ?? throw new InvalidOperationException("manifest.schema.json is not embedded.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    // The schema document as JSON, to read what a failing keyword expects (allowed fields, types, bounds).
    private static readonly Lazy<JsonNode> Document = new(() => JsonNode.Parse(Text.Value)!);

    private static readonly Lazy<JsonSchema> ManifestDefinition = new(() =>
    {
        // A registry of its own: building the schema registers its $id there, and the reference resolves against it.
        var options = new BuildOptions { SchemaRegistry = new SchemaRegistry() };
        _ = JsonSchema.FromText(Text.Value, options);
        return JsonSchema.FromText($$"""{"$ref": "{{Id}}#/$defs/manifest"}""", options);
    });

    public static string Json => Text.Value;

    /// <summary>Every field name the schema declares, ranked by where it is first declared: the order a manifest's
    /// fields are written back in (version, base_url, auth, … steps; a step's id before its request).</summary>
    internal static readonly Lazy<IReadOnlyDictionary<string, int>> FieldOrder = new(() =>
    {
        var order = new Dictionary<string, int>(StringComparer.Ordinal);
        void Visit(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o:
                    if (o["properties"] is JsonObject properties)
                    {
                        foreach (var (name, _) in properties)
                        {
                            order.TryAdd(name, order.Count);
                        }
                    }
                    foreach (var (_, child) in o)
                    {
                        Visit(child);
                    }
                    break;
                case JsonArray a:
                    foreach (var item in a)
                    {
                        Visit(item);
                    }
                    break;
            }
        }
        Visit(Document.Value);
        return order;
    });

    /// <summary>Where <paramref name="manifest"/> breaks the schema's manifest definition, as (JSON pointer, message).</summary>
    public static IReadOnlyList<(string Pointer, string Message)> Check(JsonNode? manifest)
    {
        // A field given as null counts as absent, as it always has (YAML `extract:` with nothing after it).
        var checkedNode = WithoutNullFields(manifest);
        var instance = JsonSerializer.SerializeToElement(checkedNode);
        var results = ManifestDefinition.Value.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (results.IsValid)
        {
            return [];
        }
        var issues = new List<(string, string)>();
        foreach (var detail in results.Details ?? [])
        {
            if (detail.EvaluationPath.ToString().Contains("/if", StringComparison.Ordinal))
            {
                continue; // an `if` that does not hold only selects which `then` applies
            }
            foreach (var (keyword, _) in detail.Errors ?? new Dictionary<string, string>())
            {
                var pointer = detail.InstanceLocation.ToString();
                var at = Resolve(detail.SchemaLocation);
                var value = detail.InstanceLocation.TryEvaluate(checkedNode, out var found) ? found : null;
                issues.AddRange(Describe(keyword, pointer, at, value));
            }
        }
        return issues.Count > 0 ? [.. issues.Distinct()] : [("", "The manifest does not match the manifest schema (/v1/schemas/manifest.json).")];
    }

    private static JsonNode? WithoutNullFields(JsonNode? node) => node switch
    {
        JsonObject o => o.Where(p => p.Value is not null).Aggregate(new JsonObject(), (copy, p) =>
        {
            copy[p.Key] = WithoutNullFields(p.Value);
            return copy;
        }),
        JsonArray a => new JsonArray([.. a.Select(WithoutNullFields)]),
        _ => node?.DeepClone(),
    };

    private static IEnumerable<(string, string)> Describe(string keyword, string pointer, JsonNode? schema, JsonNode? value)
    {
        var obj = schema as JsonObject; // a boolean schema has no keywords
        var name = pointer.Length == 0 ? "The manifest" : $"'{Unescape(pointer[(pointer.LastIndexOf('/') + 1)..])}'";
        switch (keyword)
        {
            case "" when schema is JsonValue v && v.GetValueKind() == JsonValueKind.False:
                // additionalProperties: false reports the unknown field itself; the allowed ones are its siblings in the schema.
                var parent = schema.Parent;
                var allowed = parent?["properties"] is JsonObject props ? string.Join(", ", props.Select(p => p.Key)) : "";
                yield return (pointer, $"Unknown field {name}; allowed here: {allowed}.");
                break;
            case "required":
                foreach (var field in obj?["required"]?.AsArray().Select(f => (string)f!) ?? [])
                {
                    if (value is JsonObject given && !given.ContainsKey(field))
                    {
                        yield return ($"{pointer}/{field}", $"'{field}' is required.");
                    }
                }
                break;
            case "type":
                yield return (pointer, $"{name} must be {Expected(obj?["type"])}, not {Kind(value)}.");
                break;
            case "enum":
                yield return (pointer, $"{name} must be one of {string.Join(", ", obj?["enum"]?.AsArray().Select(e => e?.ToJsonString().Trim('"')) ?? [])}; found {value?.ToJsonString() ?? "null"}.");
                break;
            case "const" when pointer == "/version":
                yield return (pointer, $"Unknown manifest version {value?.ToJsonString()}; this engine supports version {obj?["const"]?.ToJsonString()}.");
                break;
            case "const":
                yield return (pointer, $"{name} must be {obj?["const"]?.ToJsonString()}.");
                break;
            case "pattern":
                yield return (pointer, (string?)obj?["x-error"] ?? $"{name} does not match the pattern {obj?["pattern"]}.");
                break;
            case "minimum" or "maximum":
                yield return (pointer, obj?["minimum"] is { } min && obj["maximum"] is { } max
                    ? $"{name} must be between {min} and {max}."
                    : obj?["minimum"] is { } least ? $"{name} must be at least {least}." : $"{name} must be at most {obj?["maximum"]}.");
                break;
            case "minItems":
                yield return (pointer, $"{name} must list at least {obj?["minItems"]} item(s).");
                break;
            case "minProperties" or "maxProperties":
                yield return (pointer, pointer.EndsWith("/body", StringComparison.Ordinal)
                    ? "A body has exactly one of 'json', 'form' or 'text'."
                    : $"{name} has {(value as JsonObject)?.Count ?? 0} field(s), outside the allowed range.");
                break;
            case "propertyNames" or "allOf" or "$ref" or "items" or "properties" or "additionalProperties" or "then" or "if":
                break; // the failing keyword underneath reports it
            default:
                yield return (pointer, $"{name} is not valid here ({keyword}).");
                break;
        }
    }

    /// <summary>The schema node a failing keyword's location points at, e.g. …#/$defs/step/properties/id. JsonSchema.Net
    /// appends a segment to some locations (…/then/1, …/propertyNames/extract) that names nothing in the document:
    /// such a segment is skipped, and a boolean schema (additionalProperties: false) ends the walk.</summary>
    private static JsonNode? Resolve(Uri location)
    {
        var fragment = Uri.UnescapeDataString(location.Fragment.TrimStart('#'));
        JsonNode? node = Document.Value;
        foreach (var segment in fragment.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (node is JsonValue)
            {
                break;
            }
            var key = Unescape(segment);
            node = node switch
            {
                JsonObject o when o.TryGetPropertyValue(key, out var child) => child,
                JsonArray a when int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => node,
            };
        }
        return node;
    }

    private static string Unescape(string segment) => segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);

    private static string Expected(JsonNode? type) => type switch
    {
        JsonArray types => string.Join(" or ", types.Select(t => Article((string)t!))),
        _ => Article((string?)type ?? "a value"),
    };

    private static string Article(string type) => type switch
    {
        "object" or "array" or "integer" => $"an {type}",
        "boolean" => "true or false",
        _ => $"a {type}",
    };

    internal static string Kind(JsonNode? node) => node switch
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
