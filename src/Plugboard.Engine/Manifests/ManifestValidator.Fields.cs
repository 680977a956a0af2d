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
                // A number however it was read (YAML gives longs, JSON text gives elements).
                if (array[i] is JsonValue v && v.GetValueKind() == JsonValueKind.Number
                    && int.TryParse(v.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) && code is >= 100 and <= 599)
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
}
