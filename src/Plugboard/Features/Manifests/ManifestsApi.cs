using System.Text.Json;
using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Http;

namespace Plugboard.Features.Manifests;

public sealed record ValidateManifestRequest(JsonElement Manifest);

public sealed record ManifestProblem(string Pointer, int? Line, int? Column, string Message);

public sealed record ManifestValidation(bool Valid, IReadOnlyList<ManifestProblem> Issues);

/// <summary>The manifest JSON Schema for editors, and the same validation `plugboard manifest validate` gives.</summary>
public static class ManifestsApi
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
        return new ManifestValidation(result.Issues.Count == 0, result.Issues.Select(i => new ManifestProblem(i.Pointer, i.Line, i.Column, i.Message)).ToList());
    }
}
