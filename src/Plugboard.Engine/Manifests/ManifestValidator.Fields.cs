using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

// The manifest validator: typed reads of JSON fields, each problem with its pointer.
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        // Typed reads of a manifest the schema has checked: a value of the wrong type reads as absent (the schema
        // reported it), so the model is built as far as it goes and the checks below still run.

        private static JsonObject? Obj(JsonNode? node) => node as JsonObject;

        private static string? Str(JsonObject obj, string key) =>
            obj.TryGetPropertyValue(key, out var node) && node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

        private static int? Int(JsonObject obj, string key) =>
            obj.TryGetPropertyValue(key, out var node) && node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && int.TryParse(v.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : null;

        private static bool? Bool(JsonObject obj, string key) =>
            obj.TryGetPropertyValue(key, out var node) && node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

        private static List<string> StrList(JsonObject obj, string key) =>
            obj[key] is JsonArray array ? [.. array.OfType<JsonValue>().Select(v => v.TryGetValue<string>(out var s) ? s : null).OfType<string>()] : [];

        private static List<int>? IntList(JsonObject obj, string key)
        {
            if (obj[key] is not JsonArray array)
            {
                return null;
            }
            // A number however it was read (YAML gives longs, JSON text gives elements).
            return [.. array.OfType<JsonValue>()
                .Where(v => v.GetValueKind() == JsonValueKind.Number)
                .Select(v => int.TryParse(v.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) ? code : 0)
                .Where(code => code is >= 100 and <= 599)];
        }

        /// <summary>A map of templated strings (query, headers, form). Numbers and booleans are accepted as their text.</summary>
        private Dictionary<string, string> StrMap(JsonObject obj, string key, string ptr, StepScope scope)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Obj(obj[key]) is not { } map)
            {
                return result;
            }
            foreach (var (name, value) in map)
            {
                if (value is JsonValue v && v.GetValueKind() is JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False)
                {
                    var text = v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString();
                    Template(text, $"{ptr}/{key}/{Escape(name)}", scope);
                    result[name] = text;
                }
            }
            return result;
        }

        private static string Kind(JsonNode? node) => ManifestSchema.Kind(node);
    }
}
