using System.Text.Json;
using System.Text.Json.Nodes;
using Plugboard.Http;

namespace Plugboard.Features.Executions;

/// <summary>Checks inputs against the manifest's declared inputs before anything is queued: required, types, unknown names.</summary>
public static class ExecutionInputs
{
    public static JsonObject Check(JsonObject? manifest, JsonElement? given)
    {
        if (manifest?["steps"] is not JsonArray { Count: > 0 })
        {
            throw new ProblemException(422, "connector-not-runnable", "Connector not runnable", "The connector's manifest has no steps: give it a manifest (PATCH the connector) first.");
        }
        if (given is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null or JsonValueKind.Undefined) })
        {
            throw Problems.Invalid("inputs must be a JSON object.", "/inputs");
        }
        var inputs = given is { ValueKind: JsonValueKind.Object } value ? (JsonObject)JsonNode.Parse(value.GetRawText())! : [];
        var declared = manifest["inputs"] as JsonObject ?? [];
        foreach (var (name, _) in inputs)
        {
            if (!declared.ContainsKey(name))
            {
                throw Problems.Invalid($"The connector declares no input named '{name}'.", $"/inputs/{name}");
            }
        }
        foreach (var (name, spec) in declared)
        {
            var type = spec?["type"]?.GetValue<string>() ?? "string";
            var required = spec?["required"]?.GetValue<bool>() ?? false;
            if (!inputs.TryGetPropertyValue(name, out var provided) || provided is null)
            {
                if (required && spec?["default"] is null)
                {
                    throw Problems.Invalid($"Input '{name}' is required.", $"/inputs/{name}");
                }
                continue;
            }
            var kind = provided.GetValueKind();
            var ok = type switch
            {
                "string" => kind == JsonValueKind.String,
                "number" => kind == JsonValueKind.Number,
                "integer" => kind == JsonValueKind.Number && provided.GetValue<decimal>() % 1 == 0,
                "boolean" => kind is JsonValueKind.True or JsonValueKind.False,
                "object" => kind == JsonValueKind.Object,
                "array" => kind == JsonValueKind.Array,
                _ => true,
            };
            if (!ok)
            {
                throw Problems.Invalid($"Input '{name}' must be of type {type}.", $"/inputs/{name}");
            }
        }
        return inputs;
    }
}
