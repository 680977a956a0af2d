using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

public static partial class ManifestParser
{
    private sealed partial class Validator(Func<string, Mark?> locate)
    {
        private static readonly string[] ParamTypes = ["string", "number", "integer", "boolean", "object", "array"];
        private static readonly string[] AuthTypes = ["none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token", "session"];
        private static readonly string[] PaginateTypes = ["offset", "page", "cursor", "link", "next_url"];
        private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

        private readonly Dictionary<string, (int Index, HashSet<string> Extractions)> _steps = new(StringComparer.Ordinal);

        public List<ManifestIssue> Issues { get; } = [];

        public void Error(string pointer, string message)
        {
            var mark = locate(pointer);
            Issues.Add(new ManifestIssue(pointer, message, mark?.Line, mark?.Column));
        }

        public Manifest? Run(JsonNode? json)
        {
            var root = Obj(json, "", ["version", "base_url", "allowed_hosts", "auth", "inputs", "config", "steps", "output"]);
            if (root is null)
            {
                return null;
            }
            var version = Int(root, "version", "", required: true);
            if (version is not null and not 1)
            {
                Error("/version", $"Unknown manifest version {version}; this engine supports version 1.");
            }
            var baseUrl = Str(root, "base_url", "", required: true) ?? "";
            Template(baseUrl, "/base_url", StepScope.None with { SecretsAllowed = false });
            var allowedHosts = StrList(root, "allowed_hosts", "");
            var inputs = Params(root, "inputs");
            var config = Params(root, "config");

            // First pass: step ids and their extraction names, so references can be checked in any order.
            var stepNodes = root.TryGetPropertyValue("steps", out var stepsNode) ? stepsNode as JsonArray : null;
            if (stepsNode is null)
            {
                Error("/steps", "'steps' is required and must list at least one step.");
            }
            else if (stepNodes is null)
            {
                Error("/steps", $"'steps' must be an array, not {Kind(stepsNode)}.");
            }
            else if (stepNodes.Count == 0)
            {
                Error("/steps", "'steps' must list at least one step.");
            }
            for (var i = 0; stepNodes is not null && i < stepNodes.Count; i++)
            {
                if (stepNodes[i] is JsonObject s && s["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var id))
                {
                    var extractions = s["extract"] is JsonObject e ? e.Select(p => p.Key).ToHashSet(StringComparer.Ordinal) : [];
                    if (!_steps.TryAdd(id, (i, extractions)))
                    {
                        Error($"/steps/{i}/id", $"Duplicate step id '{id}' (first used by /steps/{_steps[id].Index}).");
                    }
                }
            }
            var auth = Auth(root);
            var steps = new List<StepSpec>();
            for (var i = 0; stepNodes is not null && i < stepNodes.Count; i++)
            {
                if (Step(stepNodes[i], i) is { } step)
                {
                    steps.Add(step);
                }
            }
            JsonNode? output = null;
            if (root.TryGetPropertyValue("output", out var outputNode))
            {
                output = outputNode?.DeepClone();
                TemplateTree(outputNode, "/output", new StepScope(int.MaxValue, true) { SecretsAllowed = false });
            }
            return new Manifest(version ?? 0, baseUrl, allowedHosts, auth, inputs, config, steps, output);
        }
    }
}
