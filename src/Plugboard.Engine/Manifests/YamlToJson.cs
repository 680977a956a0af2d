using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Plugboard.Engine.Manifests;

public static partial class ManifestParser
{
    /// <summary>
    /// YAML (or JSON, which is YAML) to JSON nodes in one pass over the parser's events, recording each node's line and
    /// column by JSON pointer. Anchors and aliases are refused (an alias would make one node count many times: the
    /// "billion laughs"), and nesting depth and node count are capped, so any input is refused in bounded time and memory.
    /// </summary>
    private static partial class YamlToJson
    {
        private sealed class Frame(JsonNode container, string pointer)
        {
            public JsonNode Container { get; } = container;
            public string Pointer { get; } = pointer;
            public string? Key { get; set; }
            public int Index { get; set; }
        }

        public static JsonNode? Convert(string text, Dictionary<string, Mark> marks)
        {
            if (text.Length > ManifestLimits.MaxTextChars)
            {
                throw new ManifestLimitException(Start, "", $"The manifest is {text.Length} characters long, more than the limit of {ManifestLimits.MaxTextChars}.");
            }
            var parser = new Parser(new StringReader(text));
            var stack = new Stack<Frame>();
            JsonNode? root = null;
            var documents = 0;
            var nodes = 0;
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                switch (current)
                {
                    case DocumentStart when ++documents > 1:
                        throw new YamlException(current.Start, current.End, "Expected a single YAML document.");
                    case AnchorAlias:
                        throw new ManifestLimitException(current.Start, PointerOf(stack), "Aliases are not supported in manifests: write the value out in full.");
                    case NodeEvent { Anchor.IsEmpty: false }:
                        throw new ManifestLimitException(current.Start, PointerOf(stack), "Anchors (&name) are not supported in manifests: write the value out in full.");
                    case MappingEnd or SequenceEnd:
                        var done = stack.Pop();
                        if (stack.Count == 0)
                        {
                            root = done.Container;
                        }
                        continue;
                    case Scalar key when stack.TryPeek(out var map) && map.Container is JsonObject && map.Key is null:
                        map.Key = key.Value ?? "";
                        if (((JsonObject)map.Container).ContainsKey(map.Key))
                        {
                            throw new YamlException(current.Start, current.End, $"Duplicate key '{map.Key}'.");
                        }
                        continue;
                    case MappingStart or SequenceStart when stack.TryPeek(out var parent) && parent.Container is JsonObject && parent.Key is null:
                        throw new YamlException(current.Start, current.End, "Mapping keys must be plain values.");
                }
                if (current is not (Scalar or MappingStart or SequenceStart))
                {
                    continue;
                }
                if (++nodes > ManifestLimits.MaxNodes)
                {
                    throw new ManifestLimitException(current.Start, PointerOf(stack), $"The manifest has more than {ManifestLimits.MaxNodes} values.");
                }
                var pointer = PointerOf(stack);
                stack.TryPeek(out var owner);
                marks[pointer] = new Mark((int)current.Start.Line, (int)current.Start.Column);
                JsonNode? node = current switch
                {
                    Scalar scalar => ScalarValue(scalar),
                    MappingStart => new JsonObject(),
                    _ => new JsonArray(),
                };
                if (owner is not null)
                {
                    if (owner.Container is JsonObject obj)
                    {
                        obj[owner.Key!] = node;
                        owner.Key = null;
                    }
                    else
                    {
                        ((JsonArray)owner.Container).Add(node);
                        owner.Index++;
                    }
                }
                if (current is MappingStart or SequenceStart)
                {
                    if (stack.Count >= ManifestLimits.MaxDepth)
                    {
                        throw new ManifestLimitException(current.Start, pointer, $"The manifest nests deeper than {ManifestLimits.MaxDepth} levels.");
                    }
                    stack.Push(new Frame(node!, pointer));
                }
                else if (owner is null)
                {
                    root = node;
                }
            }
            return root;
        }

        private static readonly YamlDotNet.Core.Mark Start = new(0, 1, 1);

        /// <summary>Where the next value of the innermost open mapping or sequence would go.</summary>
        private static string PointerOf(Stack<Frame> stack) =>
            !stack.TryPeek(out var owner) ? ""
            : owner.Container is JsonObject ? $"{owner.Pointer}/{Escape(owner.Key ?? "")}" : $"{owner.Pointer}/{owner.Index}";

        internal static JsonNode? ScalarValue(Scalar scalar)
        {
            var value = scalar.Value ?? "";
            var tag = scalar.Tag.IsEmpty ? null : scalar.Tag.Value;
            if (scalar.Style != ScalarStyle.Plain || tag == "tag:yaml.org,2002:str")
            {
                return JsonValue.Create(value);
            }
            if (value is "" or "~" or "null" or "Null" or "NULL")
            {
                return null;
            }
            if (value is "true" or "True" or "TRUE")
            {
                return JsonValue.Create(true);
            }
            if (value is "false" or "False" or "FALSE")
            {
                return JsonValue.Create(false);
            }
            if (IntPattern().IsMatch(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                return JsonValue.Create(l);
            }
            if (FloatPattern().IsMatch(value) && decimal.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            {
                return JsonValue.Create(d);
            }
            return JsonValue.Create(value);
        }

        [GeneratedRegex(@"^[-+]?[0-9]+$")]
        private static partial Regex IntPattern();

        [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
        private static partial Regex FloatPattern();
    }
}
