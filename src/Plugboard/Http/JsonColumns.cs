using System.Text.Json;
using System.Text.Json.Nodes;

namespace Plugboard.Http;

/// <summary>jsonb columns travel as text through Dapper and as JSON values in the API.</summary>
public static class JsonColumns
{
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    public static JsonElement Element(string? json) => json is null ? EmptyObject : JsonDocument.Parse(json).RootElement.Clone();

    public static JsonElement? NullableElement(string? json) => json is null ? null : JsonDocument.Parse(json).RootElement.Clone();

    /// <summary>The value as jsonb text, requiring an object (null becomes {}), bounded in size.</summary>
    public static string Object(JsonElement? value, string field, int maxBytes = 256 * 1024)
    {
        if (value is null || value.Value.ValueKind == JsonValueKind.Null)
        {
            return "{}";
        }
        if (value.Value.ValueKind != JsonValueKind.Object)
        {
            throw Problems.Invalid($"{field} must be a JSON object.", "/" + field);
        }
        var text = value.Value.GetRawText();
        if (text.Length > maxBytes)
        {
            throw Problems.Invalid($"{field} must be at most {maxBytes / 1024} KiB.", "/" + field);
        }
        return text;
    }

    public static JsonNode? Node(string json) => JsonNode.Parse(json);
}
