using System.Text.Json;
using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Http;

namespace Plugboard.Features.Executions;

/// <summary>Checks inputs against the manifest's declared inputs before anything is queued: required, types, unknown
/// names (the engine's own rule, <see cref="ManifestArguments"/>).</summary>
public static class ExecutionInputs
{
    public static JsonObject Check(ManifestParseResult parsed, JsonElement? given)
    {
        var manifest = parsed.Manifest;
        if (manifest is null && parsed.Json is JsonObject { Count: > 0 })
        {
            throw new ProblemException(422, "connector-not-runnable", "Connector not runnable",
                $"The connector's manifest is invalid ({parsed.Issues[0].Pointer}: {parsed.Issues[0].Message}): fix it (PATCH the connector) first.");
        }
        if (manifest is null || manifest.Steps.Count == 0)
        {
            throw new ProblemException(422, "connector-not-runnable", "Connector not runnable", "The connector's manifest has no steps: give it a manifest (PATCH the connector) first.");
        }
        if (given is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null or JsonValueKind.Undefined) })
        {
            throw Problems.Invalid("inputs must be a JSON object.", "/inputs");
        }
        var inputs = given is { ValueKind: JsonValueKind.Object } value ? (JsonObject)JsonNode.Parse(value.GetRawText())! : [];
        var issues = ManifestArguments.Check(manifest.Inputs, inputs, "input", "inputs", refuseUndeclared: true);
        return issues.Count == 0 ? inputs : throw Problems.Invalid(issues[0].Message, issues[0].Pointer);
    }
}
