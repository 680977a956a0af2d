using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Tests;

/// <summary>Manifests run in shared workers: no template or JSONPath can take a worker's memory or a thread.</summary>
public sealed class SandboxTests
{
    private static string WithHeader(string template) => $$$"""
        version: 1
        base_url: "https://api.example.test"
        steps:
          - id: s
            request: { method: GET, path: /x, headers: { X-Value: "{{{template}}}" } }
        """;

    [Theory]
    [InlineData("{% assign s = 'x' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}")]
    [InlineData("{% for i in (1..10) %}x{% endfor %}")]
    [InlineData("{% capture s %}x{% endcapture %}{{ s }}")]
    [InlineData("{% include 'other' %}")]
    [InlineData("{% tablerow i in (1..3) %}{{ i }}{% endtablerow %}")]
    [InlineData("{% cycle 'a', 'b' %}")]
    [InlineData("{% increment n %}")]
    [InlineData("{{ (1..1000000000) | join: ',' }}")]
    [InlineData("{{ (1..1000) | join: ',' }}")]
    [InlineData("{{ (1..inputs.n) | join: ',' }}")]
    public void Loops_variables_includes_and_large_ranges_are_refused_when_the_manifest_is_validated(string template)
    {
        var issues = ManifestParser.Parse(WithHeader(template)).Issues;
        Assert.Contains(issues, i => i.Pointer == "/steps/0/request/headers/X-Value" && i.Message.StartsWith("Template syntax error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Conditions_small_ranges_and_filters_still_work()
    {
        var model = new TemplateModel { Inputs = new Newtonsoft.Json.Linq.JObject { ["n"] = 2, ["name"] = "Ada" } };
        var engine = new TemplateEngine(1024 * 1024);
        Assert.Equal("1,2,3", await engine.RenderAsync("{{ (1..3) | join: ',' }}", model));
        Assert.Empty(ManifestParser.Parse(WithHeader("{{ (1..999) | size }}")).Issues); // 999 numbers: fewer than 1,000
        Assert.Equal("999", await engine.RenderAsync("{{ (1..999) | size }}", model));
        Assert.Equal("two", await engine.RenderAsync("{% if inputs.n == 2 %}two{% else %}other{% endif %}", model));
        Assert.Equal("b", await engine.RenderAsync("{% case inputs.n %}{% when 1 %}a{% when 2 %}b{% endcase %}", model));
        Assert.Equal("ADA!", await engine.RenderAsync("{{ inputs.name | upcase | append: '!' }}", model));
        Assert.Equal("{{ raw }}", await engine.RenderAsync("{% raw %}{{ raw }}{% endraw %}", model));
    }

    [Fact]
    public async Task A_filter_chain_cannot_grow_a_string_or_a_list_past_the_limits()
    {
        var big = new string('a', 400_000);
        var model = new TemplateModel { Inputs = new Newtonsoft.Json.Linq.JObject { ["big"] = big } };
        var engine = new TemplateEngine(int.MaxValue);
        var growth = await Assert.ThrowsAsync<TemplateException>(async () =>
            await engine.RenderAsync("{{ inputs.big | append: inputs.big | append: inputs.big | append: inputs.big | size }}", model));
        Assert.Contains("'append' would make a string longer than", growth.Message, StringComparison.Ordinal);
        var list = await Assert.ThrowsAsync<TemplateException>(async () => await engine.RenderAsync("{{ inputs.big | split: '' | size }}", model));
        Assert.Contains("'split' made a list longer than", list.Message, StringComparison.Ordinal);
        Assert.Equal("800000", await engine.RenderAsync("{{ inputs.big | append: inputs.big | size }}", model));
    }

    [Fact]
    public async Task A_catastrophic_jsonpath_regex_fails_its_step_quickly()
    {
        var evil = new string('a', 40) + "!";
        await using var stub = await Stub.StartAsync(app => app.MapGet("/items", () => Results.Json(new { items = new[] { new { name = evil }, new { name = "ok" } } })));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: s
                request: { method: GET, path: /items }
                extract: { names: "$.items[?(@.name =~ /^(a+)+$/)].name" }
            """);
        watch.Stop();
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("has a regular expression that took longer than 250 ms", result.Error, StringComparison.Ordinal);
        // Without the timeout this backtracks 2^40 times: hours. The bound is the regex timeout, not this test's clock.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_run_reads_at_most_its_response_budget()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/page", (int? page) => Results.Json(new { items = new[] { new string('x', 100_000) } })), record: false);
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: s
                request: { method: GET, path: /page }
                extract: { items: "$.items" }
                paginate: { type: page, page_param: page, max_pages: 50, stop_when_empty: false, items: items }
            """, options: Engine.FastOptions with { MaxRunResponseBytes = 1_000_000 });
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("more than 1000000 bytes of responses", result.Error, StringComparison.Ordinal);
        Assert.InRange(result.Log.Count, 9, 10); // ~100 kB a page: the tenth page crosses the budget
    }

    [Theory]
    [InlineData("base_url: \"https://{{ credentials.key }}.api.example.test\"\nsteps:\n  - id: s\n    request: { method: GET, path: /x }\n", "/base_url")]
    [InlineData("base_url: https://api.example.test\nsteps:\n  - id: s\n    when: \"{% if credentials.key contains 'a' %}1{% endif %}\"\n    request: { method: GET, path: /x }\n", "/steps/0/when")]
    [InlineData("base_url: https://api.example.test\nsteps:\n  - id: s\n    request: { method: GET, path: /x }\noutput:\n  leak: \"{{ credentials.key | split: '' | join: '.' }}\"\n", "/output/leak")]
    [InlineData("base_url: https://api.example.test\nsteps:\n  - id: s\n    request: { method: GET, path: /x }\noutput:\n  leak: \"{{ session.token }}\"\n", "/output/leak")]
    public void Base_url_conditions_and_output_cannot_read_secrets(string body, string pointer)
    {
        var issues = ManifestParser.Parse("version: 1\n" + body).Issues;
        Assert.Contains(issues, i => i.Pointer == pointer && i.Message.Contains("cannot read credentials or session", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Filters_whose_result_could_exceed_the_limit_are_refused_before_they_run()
    {
        var sep = new string('-', 100_000);
        var model = new TemplateModel { Inputs = new Newtonsoft.Json.Linq.JObject { ["sep"] = sep, ["text"] = new string('a', 1000) } };
        var engine = new TemplateEngine(int.MaxValue);
        var join = await Assert.ThrowsAsync<TemplateException>(async () => await engine.RenderAsync("{{ (1..999) | join: inputs.sep | size }}", model));
        Assert.Contains("'join' would make a string longer than", join.Message, StringComparison.Ordinal);
        var replace = await Assert.ThrowsAsync<TemplateException>(async () => await engine.RenderAsync("{{ inputs.text | replace: 'a', inputs.sep | size }}", model));
        Assert.Contains("'replace' would make a string longer than", replace.Message, StringComparison.Ordinal);
        Assert.Equal("1-2", await engine.RenderAsync("{{ (1..2) | join: '-' }}", model));
    }
}
