using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Plugboard.Engine.Manifests;

public static partial class ManifestParser
{
    /// <summary>A manifest held as JSON, written as the YAML a person edits (block style; the fields the schema knows in
    /// its order, since PostgreSQL's jsonb keeps keys sorted by length, then the others as they come), which
    /// <see cref="Parse(string, string?)"/> reads back to the same JSON: a string that would read as another type
    /// (<c>"100"</c>, <c>"true"</c>, <c>""</c>) is quoted.</summary>
    public static string ToYaml(JsonNode? json)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        // Indented sequences, as the template files are written; no folding of long lines.
        var emitter = new Emitter(text, new EmitterSettings(2, int.MaxValue, false, 1024, false, true));
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart(null, null, true));
        JsonToYaml.Write(emitter, json);
        emitter.Emit(new DocumentEnd(true));
        emitter.Emit(new StreamEnd());
        return text.ToString();
    }

    private static class JsonToYaml
    {
        public static void Write(IEmitter emitter, JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o:
                    emitter.Emit(new MappingStart());
                    var rank = ManifestSchema.FieldOrder.Value;
                    foreach (var (key, value) in o.OrderBy(p => rank.GetValueOrDefault(p.Key, int.MaxValue)))
                    {
                        String(emitter, key);
                        Write(emitter, value);
                    }
                    emitter.Emit(new MappingEnd());
                    break;
                case JsonArray a:
                    emitter.Emit(new SequenceStart(null, null, false, SequenceStyle.Block));
                    foreach (var item in a)
                    {
                        Write(emitter, item);
                    }
                    emitter.Emit(new SequenceEnd());
                    break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    String(emitter, v.GetValue<string>());
                    break;
                case null:
                    emitter.Emit(new Scalar(null, null, "null", ScalarStyle.Plain, true, false));
                    break;
                default:
                    emitter.Emit(new Scalar(null, null, node.ToJsonString(), ScalarStyle.Plain, true, false));
                    break;
            }
        }

        private static void String(IEmitter emitter, string value)
        {
            var plain = YamlToJson.ScalarValue(new Scalar(null, null, value, ScalarStyle.Plain, true, false));
            var readsAsString = plain is JsonValue v && v.GetValueKind() == JsonValueKind.String;
            emitter.Emit(new Scalar(null, null, value, readsAsString && !value.Contains('\n', StringComparison.Ordinal) ? ScalarStyle.Any : ScalarStyle.DoubleQuoted, true, true));
        }
    }
}
