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

        private static int? Int(JsonObject obj, string key) => obj.TryGetPropertyValue(key, out var node) ? Integer(node) : null;

        /// <summary>An integral number in int range, however it is written (30, 30.0, 3e1: the schema's "integer").</summary>
        private static int? Integer(JsonNode? node) =>
            node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && decimal.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            && d == decimal.Truncate(d) && d is >= int.MinValue and <= int.MaxValue ? (int)d : null;

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
            return [.. array.Select(Integer).OfType<int>()];
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
