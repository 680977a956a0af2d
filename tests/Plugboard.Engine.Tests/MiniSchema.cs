using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Plugboard.Engine.Tests;

/// <summary>
/// Just enough of JSON Schema 2020-12 to check the published manifest schema against documents in tests
/// ($ref to $defs, anyOf/oneOf, type, const, enum, properties, required, additionalProperties, items, min/max).
/// </summary>
internal static class MiniSchema
{
    public static List<string> Validate(JsonNode schemaRoot, JsonNode? document)
    {
        var errors = new List<string>();
        Check(schemaRoot, schemaRoot, document, "", errors);
        return errors;
    }

    private static void Check(JsonNode root, JsonNode? schema, JsonNode? value, string path, List<string> errors)
    {
        if (schema is not JsonObject s)
        {
            return;
        }
        if (s["$ref"] is JsonValue r)
        {
            var target = r.GetValue<string>()["#/".Length..].Split('/').Aggregate<string, JsonNode?>(root, (n, k) => n?[k]);
            Check(root, target, value, path, errors);
        }
        if (s["anyOf"] is JsonArray anyOf)
        {
            var results = anyOf.Select(alt => Validate(root, alt, value, path)).ToList();
            if (results.All(r => r.Count > 0))
            {
                errors.Add($"{path}: matches none of anyOf: {string.Join(" | ", results.Select(r => string.Join(", ", r)))}");
            }
        }
        if (s["oneOf"] is JsonArray oneOf && oneOf.Count(alt => Validate(root, alt, value, path).Count == 0) != 1)
        {
            errors.Add($"{path}: must match exactly one of oneOf");
        }
        if (s["const"] is { } constant && !JsonNode.DeepEquals(constant, value))
        {
            errors.Add($"{path}: must be {constant.ToJsonString()}");
        }
        if (s["enum"] is JsonArray options && !options.Any(o => JsonNode.DeepEquals(o, value)))
        {
            errors.Add($"{path}: not one of the allowed values");
        }
        if (s["type"] is { } type)
        {
            var allowed = type is JsonArray a ? a.Select(t => t!.GetValue<string>()).ToArray() : [type.GetValue<string>()];
            if (!allowed.Any(t => IsType(t, value)))
            {
                errors.Add($"{path}: must be {string.Join(" or ", allowed)}");
                return;
            }
        }
        if (value is JsonObject obj)
        {
            foreach (var required in s["required"]?.AsArray() ?? [])
            {
                if (!obj.ContainsKey(required!.GetValue<string>()))
                {
                    errors.Add($"{path}: missing {required}");
                }
            }
            if (s["minProperties"] is { } minP && obj.Count < minP.GetValue<int>() || s["maxProperties"] is { } maxP && obj.Count > maxP.GetValue<int>())
            {
                errors.Add($"{path}: wrong number of properties");
            }
            var properties = s["properties"] as JsonObject;
            foreach (var (key, child) in obj)
            {
                if (properties?.TryGetPropertyValue(key, out var propertySchema) == true)
                {
                    Check(root, propertySchema, child, $"{path}/{key}", errors);
                }
                else if (s["additionalProperties"] is JsonValue additional && !additional.GetValue<bool>())
                {
                    errors.Add($"{path}/{key}: not allowed");
                }
                else if (s["additionalProperties"] is JsonObject additionalSchema)
                {
                    Check(root, additionalSchema, child, $"{path}/{key}", errors);
                }
            }
        }
        if (value is JsonArray array)
        {
            if (s["minItems"] is { } min && array.Count < min.GetValue<int>())
            {
                errors.Add($"{path}: too few items");
            }
            for (var i = 0; s["items"] is { } items && i < array.Count; i++)
            {
                Check(root, items, array[i], $"{path}/{i}", errors);
            }
        }
        if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String && s["pattern"] is { } pattern && !Regex.IsMatch((string)v!, pattern.GetValue<string>()))
        {
            errors.Add($"{path}: does not match {pattern}");
        }
        if (value is JsonValue n && n.GetValueKind() == JsonValueKind.Number)
        {
            var number = decimal.Parse(n.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
            if (s["minimum"] is { } lo && number < lo.GetValue<decimal>() || s["maximum"] is { } hi && number > hi.GetValue<decimal>())
            {
                errors.Add($"{path}: out of range");
            }
        }
    }

    private static List<string> Validate(JsonNode root, JsonNode? schema, JsonNode? value, string path)
    {
        var errors = new List<string>();
        Check(root, schema, value, path, errors);
        return errors;
    }

    private static bool IsType(string type, JsonNode? value) => type switch
    {
        "object" => value is JsonObject,
        "array" => value is JsonArray,
        "string" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String,
        "number" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number,
        "integer" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && decimal.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) % 1 == 0,
        "boolean" => value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
        "null" => value is null,
        _ => false,
    };
}
