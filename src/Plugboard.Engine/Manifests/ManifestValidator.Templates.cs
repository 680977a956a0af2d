using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Plugboard.Engine.Templating;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

// The manifest validator: declared inputs and config, templates and their references, JSONPath.
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        private Dictionary<string, ParameterSpec> Params(JsonObject root, string key)
        {
            var result = new Dictionary<string, ParameterSpec>(StringComparer.Ordinal);
            if (Obj(root[key]) is not { } obj)
            {
                return result;
            }
            foreach (var (name, node) in obj)
            {
                var ptr = $"/{key}/{Escape(name)}";
                if (Obj(node) is not { } spec)
                {
                    continue;
                }
                var type = Str(spec, "type") ?? "string";
                var required = Bool(spec, "required") ?? false;
                var hasDefault = spec.TryGetPropertyValue("default", out var def);
                if (hasDefault && def is not null && !ManifestArguments.Matches(type, def))
                {
                    Error($"{ptr}/default", $"The default of '{name}' is {Kind(def)}, but its type is {type}.");
                }
                result[name] = new ParameterSpec(type, required, def?.DeepClone(), Str(spec, "description"));
            }
            return result;
        }

        private void TemplateTree(JsonNode? node, string ptr, StepScope scope)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, child) in obj)
                    {
                        TemplateTree(child, $"{ptr}/{Escape(key)}", scope);
                    }
                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        TemplateTree(array[i], $"{ptr}/{i}", scope);
                    }
                    break;
                case JsonValue value when value.TryGetValue<string>(out var text):
                    Template(text, ptr, scope);
                    break;
            }
        }

        /// <param name="SecretsAllowed">False where a value rendered from a secret would leave the credential hosts'
        /// protection: base_url (its host receives credentials; a secret in it reaches DNS), when (a condition on a
        /// secret leaks it bit by bit through which requests follow) and output (readable by every member, and filters
        /// can disguise a secret from the redactor).</param>
        private readonly record struct StepScope(int Index, bool StepsAllowed)
        {
            public bool SecretsAllowed { get; init; } = true;

            public static StepScope None => new(-1, false);
        }

        private void Template(string? source, string ptr, StepScope scope)
        {
            if (source is null)
            {
                return;
            }
            if (!TemplateEngine.TryCompile(source, out _, out var error))
            {
                Error(ptr, $"Template syntax error: {error}");
                return;
            }
            if (!scope.SecretsAllowed && TemplateTag().Matches(source).Any(tag => SecretReference().IsMatch(tag.Value)))
            {
                Error(ptr, "This value cannot read credentials or session: base_url, when and output must not depend on secrets " +
                           "(put values that are not secret, such as a subdomain, in config).");
            }
            foreach (Match tag in TemplateTag().Matches(source))
            {
                foreach (Match reference in StepReference().Matches(tag.Value))
                {
                    var id = reference.Groups[1].Success ? reference.Groups[1].Value : reference.Groups[2].Value;
                    var field = reference.Groups[3].Success ? reference.Groups[3].Value : reference.Groups[4].Success ? reference.Groups[4].Value : null;
                    if (!scope.StepsAllowed)
                    {
                        Error(ptr, $"This value is rendered before any step runs, so it cannot reference steps.{id}.");
                        continue;
                    }
                    StepRef(id, field, ptr, scope);
                }
            }
        }

        private void StepRef(string id, string? field, string ptr, StepScope scope)
        {
            if (!_steps.TryGetValue(id, out var target))
            {
                Error(ptr, $"References unknown step '{id}'" + (_steps.Count > 0 ? $" (steps are: {string.Join(", ", _steps.Keys)})." : "."));
                return;
            }
            if (target.Index == scope.Index)
            {
                Error(ptr, $"Step '{id}' references itself (a cycle); a step may only use the results of earlier steps.");
                return;
            }
            if (target.Index > scope.Index)
            {
                Error(ptr, $"References step '{id}', which runs later (forward reference); a step may only use the results of earlier steps, so cycles are impossible.");
                return;
            }
            if (field is not null && !target.Extractions.Contains(field))
            {
                Error(ptr, $"Step '{id}' has no extraction '{field}'" + (target.Extractions.Count > 0 ? $" (it extracts: {string.Join(", ", target.Extractions)})." : "."));
            }
        }

        private void JsonPath(string? path, string ptr)
        {
            if (path is not null && CheckJsonPath(path) is { } error)
            {
                Error(ptr, $"Invalid JSONPath '{path}': {error}");
            }
        }
    }
}
