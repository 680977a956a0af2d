using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

public static partial class ManifestParser
{
    private sealed partial class Validator(Func<string, Mark?> locate)
    {
        private readonly Dictionary<string, (int Index, HashSet<string> Extractions)> _steps = new(StringComparer.Ordinal);

        public List<ManifestIssue> Issues { get; } = [];

        public void Error(string pointer, string message)
        {
            var mark = locate(pointer);
            Issues.Add(new ManifestIssue(pointer, message, mark?.Line, mark?.Column));
        }

        /// <summary>Builds the model of a manifest and checks what the schema cannot say (its structure was checked
        /// against the schema before: see <see cref="ManifestSchema.Check"/>).</summary>
        public Manifest? Run(JsonNode? json)
        {
            if (json is not JsonObject root)
            {
                return null;
            }
            var version = Int(root, "version");
            var baseUrl = Str(root, "base_url") ?? "";
            Template(baseUrl, "/base_url", StepScope.None with { SecretsAllowed = false });
            var allowedHosts = StrList(root, "allowed_hosts");
            var inputs = Params(root, "inputs");
            var config = Params(root, "config");

            // First pass: step ids and their extraction names, so references can be checked in any order.
            var stepNodes = root["steps"] as JsonArray;
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
            var streams = Streams(root);
            var webhooks = Webhooks(root, inputs);
            return new Manifest(version ?? 0, baseUrl, allowedHosts, auth, inputs, config, steps, output) { Streams = streams, Webhooks = webhooks };
        }
    }
}
