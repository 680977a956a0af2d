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

    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 128 };

    /// <summary>
    /// Reads one UTF-8 JSON document (comments skipped, nesting up to 128, nothing after it) in place, without copying
    /// the bytes; disposing it returns its pooled buffers. Throws <see cref="System.Text.Json.JsonException"/>.
    /// </summary>
    public static JsonDocument ParseDocument(ReadOnlyMemory<byte> utf8) => JsonDocument.Parse(utf8, DocumentOptions);

    /// <summary>
    /// An element as Newtonsoft tokens, typed as <see cref="Parse"/> types them: integers as long, other numbers as
    /// decimal (double beyond its range), strings never read as dates, the last of duplicate names wins.
    /// </summary>
    public static JToken ToToken(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var obj = new JObject();
                foreach (var property in element.EnumerateObject())
                {
                    obj[property.Name] = ToToken(property.Value);
                }
                return obj;
            case JsonValueKind.Array:
                var array = new JArray();
                foreach (var item in element.EnumerateArray())
                {
                    array.Add(ToToken(item));
                }
                return array;
            case JsonValueKind.String:
                return new JValue(element.GetString());
            case JsonValueKind.Number:
                return element.TryGetInt64(out var l) ? new JValue(l)
                    : element.TryGetDecimal(out var m) ? new JValue(m)
                    : new JValue(element.GetDouble());
            case JsonValueKind.True:
                return new JValue(true);
            case JsonValueKind.False:
                return new JValue(false);
            default:
                return JValue.CreateNull();
        }
    }

    /// <summary>
    /// Applies a JSONPath of the simple form <c>$</c>, <c>.name</c>, <c>['name']</c>, <c>[index]</c> straight to an
    /// element, converting only what it selects; false for any other path (use <see cref="Select"/> on tokens). Gives
    /// what Newtonsoft's SelectToken gives for such a path: the value, or null when nothing matches.
    /// </summary>
    public static bool TrySelect(JsonElement root, string path, out JToken result)
    {
        var segments = SimplePaths.GetOrAdd(path, ParseSimplePath);
        if (segments is null)
        {
            result = JValue.CreateNull();
            return false;
        }
        var current = root;
        foreach (var (name, index) in segments)
        {
            if (name is not null
                ? current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(name, out current)
                : current.ValueKind != JsonValueKind.Array || index >= current.GetArrayLength())
            {
                result = JValue.CreateNull();
                return true;
            }
            if (name is null)
            {
                current = current[index];
            }
        }
        result = ToToken(current);
        return true;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string? Name, int Index)[]?> SimplePaths = new(StringComparer.Ordinal);

    private static (string? Name, int Index)[]? ParseSimplePath(string path)
    {
        if (path.Length == 0 || path[0] != '$')
        {
            return null;
        }
        var segments = new List<(string?, int)>();
        var i = 1;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                var start = ++i;
                while (i < path.Length && (char.IsAsciiLetterOrDigit(path[i]) || path[i] is '_' or '-'))
                {
                    i++;
                }
                if (i == start || !(char.IsAsciiLetter(path[start]) || path[start] == '_'))
                {
                    return null;
                }
                segments.Add((path[start..i], 0));
            }
            else if (path[i] == '[' && i + 1 < path.Length && path[i + 1] is '\'' or '"')
            {
                var quote = path[i + 1];
                var close = path.IndexOf(quote, i + 2);
                if (close < 0 || close + 1 >= path.Length || path[close + 1] != ']' || path.AsSpan(i + 2, close - i - 2).IndexOfAny('\\', '*') >= 0)
                {
                    return null;
                }
                segments.Add((path[(i + 2)..close], 0));
                i = close + 2;
            }
            else if (path[i] == '[')
            {
                var close = path.IndexOf(']', i);
                if (close < 0 || !int.TryParse(path.AsSpan(i + 1, close - i - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
                {
                    return null;
                }
                segments.Add((null, index));
                i = close + 1;
            }
            else
            {
                return null;
            }
        }
        return [.. segments];
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

    /// <summary>How long one <c>=~ /regex/</c> filter of a JSONPath may run against one value: a catastrophic pattern
    /// fails its step instead of holding a worker's thread (a synchronous regex cannot be cancelled).</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(250);

    private static readonly JsonSelectSettings SelectSettings = new() { RegexMatchTimeout = RegexTimeout };

    /// <summary>Applies a JSONPath: a path that can match several values always yields an array, otherwise one value or null.</summary>
    public static JToken Select(JToken root, string path)
    {
        try
        {
            if (Manifests.ManifestParser.IsMultiPath(path))
            {
                return new JArray(root.SelectTokens(path, SelectSettings).Select(t => t.DeepClone()));
            }
            return root.SelectToken(path, SelectSettings)?.DeepClone() ?? JValue.CreateNull();
        }
        catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            throw new RunFailedException($"The JSONPath '{path}' has a regular expression that took longer than {RegexTimeout.TotalMilliseconds:0} ms on one value; simplify it.");
        }
    }
}
