using Newtonsoft.Json.Linq;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Tests;

/// <summary>Templates of text and plain paths are rendered without Fluid: they must read exactly as Fluid renders them.</summary>
public sealed class TemplateTests
{
    private static TemplateModel Model() => new()
    {
        Inputs = JObject.Parse("""
            { "name": "Ada", "n": 42, "big": 9007199254740993, "neg": -7, "yes": true, "no": false, "none": null, "ratio": 1.50,
              "list": [1, 2], "nested": { "deep": { "id": "x-1", "size": 3 } }, "empty": "", "size": "s", "text": "a }} b" }
            """),
        Steps = JObject.Parse("""{ "users": { "id": "u-1", "count": 0 }, "skipped": {} }"""),
        Credentials = new JObject { ["api_key"] = "secret-value" },
        Page = new JObject { ["number"] = 2, ["cursor"] = null },
        Item = new JValue("item-1"),
        Record = JObject.Parse("""{ "id": 7, "title": "T", "meta": { "tags": ["a"] } }"""),
    };

    public static TheoryData<string> Templates() =>
    [
        "{{ inputs.name }}", "{{inputs.n}}", "{{ inputs.big }}", "{{ inputs.neg }}", "{{ inputs.yes }}", "{{ inputs.no }}", "{{ inputs.none }}",
        "{{ inputs.missing }}", "{{ inputs.missing.deeper }}", "{{ inputs.none.deeper }}", "{{ inputs.ratio }}", "{{ inputs.list }}",
        "{{ inputs.nested }}", "{{ inputs.nested.deep.id }}", "{{ inputs.nested.deep.size }}", "{{ inputs.list.size }}", "{{ inputs.name.size }}",
        "{{ inputs.empty }}", "{{ inputs.size }}", "{{ inputs.text }}", "/users/{{ steps.users.id }}/orders", "{{ steps.users.count }}",
        "{{ steps.skipped.id }}", "{{ steps.nope.id }}", "a{{ page.number }}b{{ page.cursor }}c", "{{ item }}", "{{ item.x }}",
        "{{ record.id }}-{{ record.title }}", "{{ record.meta.tags }}", "Bearer {{ credentials.api_key }}", "{{ session.token }}",
        "{{ sync.full_refresh }}", "{{ event.payload.id }}", "{{ index }}", "{{ now }}", "{{ step.id }}", "x }} y {{ inputs.name }}",
        "{{ inputs.name | upcase }}", "{{ inputs.name }}{% if inputs.yes %}!{% endif %}", "{{- inputs.name -}}", "{{ inputs['name'] }}",
    ];

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task A_template_renders_as_Fluid_renders_it_and_notes_the_same_secret_reads(string source)
    {
        var engine = new TemplateEngine(1024);
        var template = TemplateEngine.Compile(source);
        var (reads, fluidReads) = (new SecretReads(), new SecretReads());
        Assert.Equal(await engine.RenderWithFluidAsync(template, Model(), fluidReads), await engine.RenderAsync(template, Model(), reads));
        Assert.Equal(fluidReads.Any, reads.Any);
        if (template.SingleExpression is not null)
        {
            var expected = await engine.EvaluateWithFluidAsync(template, Model());
            var actual = await engine.EvaluateAsync(template, Model());
            Assert.Equal(expected.Type, actual.Type);
            Assert.True(JToken.DeepEquals(expected, actual), $"{source}: {actual} instead of {expected}");
        }
    }

    [Fact]
    public void Paths_are_read_directly_only_from_plain_templates()
    {
        Assert.NotNull(TemplateEngine.Compile("/users/{{ steps.users.id }}/orders").PlainParts);
        Assert.Null(TemplateEngine.Compile("{{ inputs.name | upcase }}").PlainParts);
        Assert.Null(TemplateEngine.Compile("{{ inputs.list.size }}").PlainParts);
        Assert.Null(TemplateEngine.Compile("{% if inputs.yes %}x{% endif %}").PlainParts);
    }

    [Fact]
    public async Task Output_over_the_limit_is_refused_on_the_plain_path_too()
    {
        var engine = new TemplateEngine(10);
        var model = new TemplateModel { Inputs = new JObject { ["long"] = new string('x', 8) } };
        Assert.Equal("xxxxxxxx", await engine.RenderAsync("{{ inputs.long }}", model));
        var error = await Assert.ThrowsAsync<TemplateException>(async () => await engine.RenderAsync("{{ inputs.long }}{{ inputs.long }}", model));
        Assert.Contains("exceeds 10 characters", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_derived_model_sees_its_own_values_and_shares_the_rest()
    {
        // Fluid templates (a filter): they read the models' Fluid views, which a derived model shares only where nothing changed.
        var engine = new TemplateEngine(1024);
        const string source = "{{ page.number | plus: 0 }}/{{ item | upcase }}/{{ session.token | upcase }}/{{ credentials.key | upcase }}/{{ record.id | plus: 0 }}/{{ step.id | upcase }}/{{ inputs.name | upcase }}";
        var first = new TemplateModel { Inputs = new JObject { ["name"] = "ada" } }.With(page: new JObject { ["number"] = 1 }, item: "a",
            session: new JObject { ["token"] = "s1" }, credentials: new JObject { ["key"] = "k1" }, record: new JObject { ["id"] = 1 }, stepId: "one");
        Assert.Equal("1/A/S1/K1/1/ONE/ADA", await engine.RenderAsync(source, first));
        var second = first.With(page: new JObject { ["number"] = 2 }, item: "b", session: new JObject { ["token"] = "s2" }, credentials: new JObject { ["key"] = "k2" },
            record: new JObject { ["id"] = 2 }, stepId: "two");
        Assert.Equal("2/B/S2/K2/2/TWO/ADA", await engine.RenderAsync(source, second));
        Assert.Equal("2/B/S2/K2/2/TWO/ADA", await engine.RenderAsync(source, second.With()));
        Assert.Equal("1/A/S1/K1/1/ONE/ADA", await engine.RenderAsync(source, first));
        // Steps recorded after a model was derived are seen by both (they share the live JSON).
        second.Steps["later"] = new JObject { ["id"] = "l-1" };
        Assert.Equal("L-1", await engine.RenderAsync("{{ steps.later.id | upcase }}", first));
    }
}
