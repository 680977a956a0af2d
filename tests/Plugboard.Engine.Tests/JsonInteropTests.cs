using System.Text;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public sealed class JsonInteropTests
{
    [Theory]
    [InlineData("""{"a":1,"b":[true,false,null],"c":{"d":"e"}}""")]
    [InlineData("""[1, -2, 3.5, 1.0, 1e3, 12345678901234, 0.1]""")]
    [InlineData("""{"when":"2024-05-01T10:00:00Z","id":"007","empty":{},"none":[]}""")]
    [InlineData("""{"text":"line\nbreak \"quoted\" \u00e9 \ud83d\ude00 <>&"}""")]
    [InlineData("""{"dup":1,"dup":2}""")]
    [InlineData("""{"deep":[[[[{"x":[{"y":1}]}]]]]}""")]
    [InlineData("""{"a":1} """)]
    public void Response_bodies_read_with_the_UTF8_reader_give_the_same_tokens_as_the_text_reader(string json)
    {
        var fast = JsonInterop.ToToken(JsonInterop.ParseDocument(Encoding.UTF8.GetBytes(json)).RootElement);
        var text = JsonInterop.Parse(json);
        Assert.True(JToken.DeepEquals(text, fast), $"{text.ToString(Newtonsoft.Json.Formatting.None)} != {fast.ToString(Newtonsoft.Json.Formatting.None)}");
        // Same value types too: dates stay strings, integers are long, other numbers decimal.
        Assert.Equal(
            text.SelectTokens("$..*").OfType<JValue>().Select(v => v.Type),
            fast.SelectTokens("$..*").OfType<JValue>().Select(v => v.Type));
    }

    [Theory]
    [InlineData("""{"a":1""")]
    [InlineData("""{"a":1} {"b":2}""")]
    [InlineData("""{"a":,}""")]
    [InlineData("")]
    public void Malformed_bodies_are_rejected(string json) =>
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => JsonInterop.ParseDocument(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void Nesting_beyond_the_depth_limit_is_rejected()
    {
        var deep = new string('[', 200) + new string(']', 200);
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => JsonInterop.ParseDocument(Encoding.UTF8.GetBytes(deep)));
    }

    [Fact]
    public void Output_nodes_keep_values_and_read_as_any_numeric_type()
    {
        var token = JsonInterop.Parse("""{"n":42,"d":1.50,"s":"x","b":true,"z":null,"a":[1,{"k":"v"}],"big":123456789012345678901234567890}""");
        var node = JsonInterop.ToNode(token)!;
        Assert.Equal(42, (int)node["n"]!);
        Assert.Equal(42.0, (double)node["n"]!);
        Assert.Equal(1.5m, (decimal)node["d"]!);
        Assert.Equal("x", (string?)node["s"]);
        Assert.True((bool)node["b"]!);
        Assert.Null(node["z"]);
        Assert.Equal("v", (string?)node["a"]![1]!["k"]);
        Assert.Equal(token.ToString(Newtonsoft.Json.Formatting.None), node.ToJsonString());
    }

    [Theory]
    [InlineData("$")]
    [InlineData("$.data")]
    [InlineData("$.data[0].id")]
    [InlineData("$.data[1].tags[0]")]
    [InlineData("$.data[5].id")]
    [InlineData("$.data.id")]
    [InlineData("$.missing.deeper")]
    [InlineData("$['odd key']")]
    [InlineData("$.meta.next_cursor")]
    [InlineData("$.meta.total")]
    [InlineData("$.meta.nothing")]
    [InlineData("$[0]")]
    [InlineData("$.data[*].id")]
    [InlineData("$..id")]
    [InlineData("$.data[?(@.id == 'b')].id")]
    [InlineData("$.dup")]
    public void Simple_paths_read_from_the_element_select_what_Newtonsoft_selects(string path)
    {
        const string json = """{"data":[{"id":"a","n":1.5},{"id":"b","tags":["x"]}],"meta":{"next_cursor":null,"total":12},"odd key":true,"dup":1,"dup":2}""";
        var expected = JsonInterop.Select(JsonInterop.Parse(json), path);
        var element = JsonInterop.ParseDocument(Encoding.UTF8.GetBytes(json)).RootElement;
        var actual = JsonInterop.TrySelect(element, path, out var selected) ? selected : JsonInterop.Select(JsonInterop.ToToken(element), path);
        Assert.True(JToken.DeepEquals(expected, actual), $"{path}: {expected.ToString(Newtonsoft.Json.Formatting.None)} != {actual.ToString(Newtonsoft.Json.Formatting.None)}");
    }

    [Theory]
    [InlineData("$.data[*].id")]
    [InlineData("$..id")]
    [InlineData("$.a[0,1]")]
    [InlineData("$.a.*")]
    [InlineData("$[ 0 ]")]
    [InlineData("data.id")]
    public void Other_paths_are_left_to_the_JSONPath_library(string path) =>
        Assert.False(JsonInterop.TrySelect(JsonInterop.ParseDocument("{}"u8.ToArray()).RootElement, path, out _));
}
