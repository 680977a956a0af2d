using System.Text.Json.Nodes;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace Plugboard.Engine.Running;

/// <summary>Conversions between System.Text.Json nodes (the host contract) and Newtonsoft tokens (JSONPath, templating).</summary>
internal static class JsonInterop
{
    private static readonly JsonLoadSettings LoadSettings = new() { LineInfoHandling = LineInfoHandling.Ignore, CommentHandling = CommentHandling.Ignore };

    public static JToken Parse(string json)
    {
        using var reader = new JsonTextReader(new StringReader(json))
        {
            DateParseHandling = DateParseHandling.None,
            FloatParseHandling = FloatParseHandling.Decimal,
            MaxDepth = 128,
            ArrayPool = CharPool.Instance,
        };
        var token = JToken.ReadFrom(reader, LoadSettings);
        return reader.Read() ? throw new JsonReaderException("Additional text after the JSON value.") : token;
    }

    public static JToken ToToken(JsonNode? node) => node is null ? JValue.CreateNull() : Parse(node.ToJsonString());

    public static JObject ToObject(JsonObject? node) => node is null ? [] : (JObject)Parse(node.ToJsonString());

    // Through text on purpose: parsed nodes are JsonElement-backed, so hosts can read numbers as any numeric type.
    public static JsonNode? ToNode(JToken token) => token.Type == JTokenType.Null ? null : JsonNode.Parse(token.ToString(Formatting.None));

    private sealed class CharPool : IArrayPool<char>
    {
        public static readonly CharPool Instance = new();
        public char[] Rent(int minimumLength) => System.Buffers.ArrayPool<char>.Shared.Rent(minimumLength);
        public void Return(char[]? array)
        {
            if (array is not null)
            {
                System.Buffers.ArrayPool<char>.Shared.Return(array);
            }
        }
    }

    /// <summary>Applies a JSONPath: a path that can match several values always yields an array, otherwise one value or null.</summary>
    public static JToken Select(JToken root, string path)
    {
        if (Manifests.ManifestParser.IsMultiPath(path))
        {
            return new JArray(root.SelectTokens(path).Select(t => t.DeepClone()));
        }
        return root.SelectToken(path)?.DeepClone() ?? JValue.CreateNull();
    }
}
