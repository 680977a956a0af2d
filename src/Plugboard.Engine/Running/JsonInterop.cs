using System.Text.Json;
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

    private static readonly JsonReaderOptions Utf8Options = new() { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 128 };

    /// <summary>
    /// Parses a UTF-8 response body into the same tokens <see cref="Parse"/> gives (integers as long, other numbers as
    /// decimal, strings never read as dates, the last of duplicate names wins) with System.Text.Json's reader, which
    /// is several times faster than Newtonsoft's on response bodies. Throws <see cref="System.Text.Json.JsonException"/>.
    /// </summary>
    public static JToken ParseUtf8(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, Utf8Options);
        var stack = new Stack<JContainer>();
        string? name = null;
        JToken? root = null;
        while (reader.Read())
        {
            JToken? value = null;
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    name = reader.GetString();
                    continue;
                case JsonTokenType.StartObject:
                    value = new JObject();
                    break;
                case JsonTokenType.StartArray:
                    value = new JArray();
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    stack.Pop();
                    continue;
                case JsonTokenType.String:
                    value = new JValue(reader.GetString());
                    break;
                case JsonTokenType.Number:
                    value = reader.TryGetInt64(out var l) ? new JValue(l)
                        : reader.TryGetDecimal(out var m) ? new JValue(m)
                        : new JValue(reader.GetDouble());
                    break;
                case JsonTokenType.True:
                    value = new JValue(true);
                    break;
                case JsonTokenType.False:
                    value = new JValue(false);
                    break;
                case JsonTokenType.Null:
                    value = JValue.CreateNull();
                    break;
                default:
                    continue;
            }
            switch (stack.Count == 0 ? null : stack.Peek())
            {
                case null:
                    root = value;
                    break;
                case JObject obj:
                    obj[name!] = value;
                    break;
                case JArray array:
                    array.Add(value);
                    break;
            }
            if (value is JContainer container)
            {
                stack.Push(container);
            }
        }
        return root ?? throw new System.Text.Json.JsonException("Empty JSON document.");
    }

    public static JToken ToToken(JsonNode? node) => node is null ? JValue.CreateNull() : Parse(node.ToJsonString());

    public static JObject ToObject(JsonObject? node) => node is null ? [] : (JObject)Parse(node.ToJsonString());

    // Through text on purpose: parsed nodes are JsonElement-backed, so hosts can read numbers as any numeric type.
    public static JsonNode? ToNode(JToken token)
    {
        if (token.Type == JTokenType.Null)
        {
            return null;
        }
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, token);
        }
        return JsonNode.Parse(buffer.WrittenSpan);
    }

    private static void Write(Utf8JsonWriter writer, JToken token)
    {
        switch (token)
        {
            case JObject obj:
                writer.WriteStartObject();
                foreach (var property in obj.Properties())
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value);
                }
                writer.WriteEndObject();
                break;
            case JArray array:
                writer.WriteStartArray();
                foreach (var item in array)
                {
                    Write(writer, item);
                }
                writer.WriteEndArray();
                break;
            case JValue value:
                switch (value.Value)
                {
                    case null:
                        writer.WriteNullValue();
                        break;
                    case string text:
                        writer.WriteStringValue(text);
                        break;
                    case bool flag:
                        writer.WriteBooleanValue(flag);
                        break;
                    case long l:
                        writer.WriteNumberValue(l);
                        break;
                    case int i:
                        writer.WriteNumberValue(i);
                        break;
                    case decimal m:
                        writer.WriteNumberValue(m);
                        break;
                    case double d when double.IsFinite(d):
                        writer.WriteNumberValue(d);
                        break;
                    default:
                        // Dates, big integers, GUIDs, non-finite doubles …: exactly as Newtonsoft writes them.
                        writer.WriteRawValue(value.ToString(Formatting.None), skipInputValidation: false);
                        break;
                }
                break;
            default:
                writer.WriteRawValue(token.ToString(Formatting.None), skipInputValidation: false);
                break;
        }
    }

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
