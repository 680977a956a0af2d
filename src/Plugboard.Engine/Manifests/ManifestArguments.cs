using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Plugboard.Engine.Manifests;

/// <summary>
/// The one rule for a manifest's declared inputs and config: required values present, values of the declared type,
/// no undeclared names (when asked). The runner applies it before a run, the host when inputs are given and when a
/// connector's config is saved or installed.
/// </summary>
public static class ManifestArguments
{
    /// <param name="kind">"input" or "config", for messages.</param>
    /// <param name="field">The request field holding the values, for pointers (<c>/{field}/{name}</c>).</param>
    public static IReadOnlyList<ManifestIssue> Check(IReadOnlyDictionary<string, ParameterSpec> specs, JsonObject given, string kind, string field,
        bool refuseUndeclared)
    {
        List<ManifestIssue>? issues = null; // most runs have none: no list is made for them
        if (refuseUndeclared)
        {
            foreach (var (name, _) in given)
            {
                if (!specs.ContainsKey(name))
                {
                    (issues ??= []).Add(new ManifestIssue($"/{field}/{Escape(name)}", $"The manifest declares no {kind} named '{name}'."));
                }
            }
        }
        foreach (var (name, spec) in specs)
        {
            if (!given.TryGetPropertyValue(name, out var value) || value is null)
            {
                if (spec.Required && spec.Default is null)
                {
                    (issues ??= []).Add(new ManifestIssue($"/{field}/{Escape(name)}", $"missing required {kind} '{name}' ({spec.Type})"));
                }
                continue;
            }
            if (!Matches(spec.Type, value))
            {
                (issues ??= []).Add(new ManifestIssue($"/{field}/{Escape(name)}", $"{kind} '{name}' must be {spec.Type}"));
            }
        }
        return (IReadOnlyList<ManifestIssue>?)issues ?? [];
    }

    public static bool Matches(string type, JsonNode? value) => type switch
    {
        "string" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String,
        "number" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number,
        "integer" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && IsWhole(v.ToJsonString()),
        "boolean" => value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
        "object" => value is JsonObject,
        "array" => value is JsonArray,
        _ => true,
    };

    // Whole numbers of any size (1e400 included): a digit string, or a decimal whose fractional part is zero.
    private static bool IsWhole(string number) =>
        decimal.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d == decimal.Truncate(d)
        : double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) && Math.Floor(f) == f;

    private static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
}
