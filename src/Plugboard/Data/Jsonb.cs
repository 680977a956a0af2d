using System.Text.Json.Nodes;

namespace Plugboard.Data;

/// <summary>JSON text PostgreSQL's jsonb accepts: it refuses the NUL character (<c>\u0000</c>) in any string, so each
/// one, in a key or a value, is stored as U+FFFD (the replacement character).</summary>
public static class Jsonb
{
    public static string Text(JsonNode? node)
    {
        var text = node?.ToJsonString() ?? "null";
        return text.Contains("\\u0000", StringComparison.Ordinal) ? WithoutNul(node)!.ToJsonString() : text;
    }

    /// <summary>JSON text for a jsonb column, NUL characters replaced.</summary>
    public static string CleanJson(string json) => json.Contains("\\u0000", StringComparison.Ordinal) ? Text(JsonNode.Parse(json)) : json;

    /// <summary>Text for a text column, which refuses NUL as jsonb does.</summary>
    public static string CleanText(string text) => text.Contains('\0', StringComparison.Ordinal) ? text.Replace('\0', '\uFFFD') : text;

    private static JsonNode? WithoutNul(JsonNode? node) => node switch
    {
        JsonObject o => o.Aggregate(new JsonObject(), (copy, p) =>
        {
            copy[p.Key.Replace('\0', '\uFFFD')] = WithoutNul(p.Value); // keys that become equal: the last one wins
            return copy;
        }),
        JsonArray a => new JsonArray([.. a.Select(WithoutNul)]),
        JsonValue v when v.TryGetValue<string>(out var s) => JsonValue.Create(s.Replace('\0', '\uFFFD')),
        _ => node?.DeepClone(),
    };
}
