using System.Text.Json;
using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Http;

namespace Plugboard.Features.Manifests;

public sealed record ValidateManifestRequest(JsonElement Manifest);

public sealed record ManifestProblem(string Pointer, int? Line, int? Column, string Message);

/// <param name="Manifest">The manifest as JSON (YAML converted), as a connector or template stores it; null when it could not be read.</param>
/// <param name="Outline">Its steps and streams, with the earlier steps each step reads: what the studio draws as a graph.</param>
public sealed record ManifestValidation(bool Valid, IReadOnlyList<ManifestProblem> Issues, JsonElement? Manifest = null, ManifestOutline? Outline = null);

public sealed record ManifestOutline(IReadOnlyList<StepOutline> Steps, IReadOnlyList<StreamOutline> Streams);

/// <param name="Uses">Earlier steps whose results this step's templates read (<c>steps.&lt;id&gt;.…</c>).</param>
public sealed record StepOutline(string Id, string? Method, string? Target, IReadOnlyList<string> Uses, bool Paginated, string? ForEach, string? When);

public sealed record StreamOutline(string Name, string? Step);

/// <summary>The manifest JSON Schema for editors, and the same validation `plugboard manifest validate` gives.</summary>
public static partial class ManifestsApi
{
    public static void Map(IEndpointRouteBuilder app, RouteGroupBuilder v1)
    {
        app.MapGet("/v1/schemas/manifest.json", () => Results.Text(ManifestSchema.Json, "application/schema+json")).WithTags("Manifests").AllowAnonymous();
        v1.MapPost("/manifests/validate", (ValidateManifestRequest body) => TypedResults.Ok(Validate(body.Manifest))).WithTags("Manifests").Produces<ManifestValidation>();
    }

    /// <summary>The manifest as a YAML/JSON string, or as a JSON object. A document refused for its size or shape (an alias,
    /// an anchor, too deep, too many values) answers 422; any other issue is listed in a 200 answer.</summary>
    public static ManifestValidation Validate(JsonElement manifest)
    {
        var result = manifest.ValueKind switch
        {
            JsonValueKind.String => ManifestParser.ParseFile(manifest.GetString()!),
            JsonValueKind.Object => JsonNode.Parse(manifest.GetRawText()) is JsonObject { } document && document["manifest"] is JsonObject inner && document.ContainsKey("slug")
                ? ManifestParser.Parse(inner) // a template file as JSON: its manifest is the connector
                : ManifestParser.Parse(JsonNode.Parse(manifest.GetRawText())),
            _ => throw Problems.Invalid("manifest must be a YAML or JSON string, or a JSON object.", "/manifest"),
        };
        if (result.Refused)
        {
            var issue = result.Issues[0];
            throw new ProblemException(422, "manifest-refused", "Manifest refused", issue.Message,
                new Dictionary<string, object?> { ["pointer"] = $"/manifest{issue.Pointer}", ["line"] = issue.Line, ["column"] = issue.Column });
        }
        return new ManifestValidation(result.Issues.Count == 0, result.Issues.Select(i => new ManifestProblem(i.Pointer, i.Line, i.Column, i.Message)).ToList(),
            result.Json is JsonObject json ? JsonSerializer.SerializeToElement(json) : null,
            result.Json is JsonObject parsed ? Outline(parsed) : null);
    }

    /// <summary>The outline is read from the document as written, so it follows an edit even while other parts are invalid.</summary>
    private static ManifestOutline Outline(JsonObject manifest)
    {
        var steps = new List<StepOutline>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var step in (manifest["steps"] as JsonArray ?? []).OfType<JsonObject>().Take(200))
        {
            var id = step["id"] is JsonValue v && v.TryGetValue<string>(out var text) ? text : $"step {steps.Count + 1}";
            var request = step["request"] as JsonObject;
            var uses = StepReference().Matches(step.ToJsonString()).Select(m => m.Groups[1].Value).Where(seen.Contains).Distinct().ToList();
            steps.Add(new StepOutline(id, Text(request?["method"]), Text(request?["path"]) ?? Text(request?["url"]), uses, step["paginate"] is JsonObject,
                Text(step["for_each"]), Text(step["when"])));
            seen.Add(id);
        }
        var streams = (manifest["streams"] as JsonArray ?? []).OfType<JsonObject>().Take(200)
            .Select(s => new StreamOutline(Text(s["name"]) ?? "stream", Text(s["records"]) is { } records && StepReference().Match(records) is { Success: true } m ? m.Groups[1].Value : null))
            .ToList();
        return new ManifestOutline(steps, streams);
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;

    [System.Text.RegularExpressions.GeneratedRegex(@"\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)")]
    private static partial System.Text.RegularExpressions.Regex StepReference();
}
