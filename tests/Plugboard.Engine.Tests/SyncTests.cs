using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Testing;

namespace Plugboard.Engine.Tests;

public class SyncTests
{
    private static string Manifest(string baseUrl, string paginate = "paginate: { type: cursor, cursor_param: after, cursor_path: \"$.next\" }") => $$$"""
        version: 1
        base_url: "{{{baseUrl}}}"
        auth: { type: bearer, token: "{{ credentials.token }}" }
        steps:
          - id: list
            request:
              method: GET
              path: /issues
              query: { since: "{{ sync.cursor.issues }}", full: "{{ sync.full_refresh }}" }
            extract: { items: "$.items[*]" }
            {{{paginate}}}
        streams:
          - name: issues
            records: steps.list.items
            primary_key: "{{ record.id }}"
            cursor: { field: "{{ record.updated_at }}", lookback_seconds: 60 }
            document:
              title: "#{{ record.id }} {{ record.title }}"
              url: "https://example.test/issues/{{ record.id }}"
              content_type: text/markdown
              content: "{{ record.body }}"
              metadata: { state: "{{ record.state }}", number: "{{ record.id }}" }
        """;

    private static async Task<Stub> Source(int total = 5, int pageSize = 2) => await Stub.StartAsync(app => app.MapGet("/issues", (HttpRequest request) =>
    {
        var after = int.TryParse(request.Query["after"], out var a) ? a : 0;
        var items = Enumerable.Range(after + 1, Math.Max(0, Math.Min(pageSize, total - after))).Select(i => new
        {
            id = i,
            title = i == 3 ? "Issue tok-secret-9" : $"Issue {i}",
            body = i == 3 ? "leaks tok-secret-9" : $"Body of {i}",
            state = i == 3 ? "tok-secret-9" : i % 2 == 0 ? "closed" : "open",
            updated_at = $"2026-11-{10 + i:00}T08:00:00Z",
        }).ToList();
        return Results.Json(new { items, next = after + items.Count < total ? (after + items.Count).ToString(System.Globalization.CultureInfo.InvariantCulture) : null });
    }));

    private static Task<SyncRunResult> SyncAsync(string yaml, SyncRequest sync) =>
        new ConnectorRunner(Engine.Client(), Engine.FastOptions).SyncAsync(Engine.Manifest(yaml),
            new RunRequest([], [], new Dictionary<string, string> { ["token"] = "tok-secret-9" }) { Sync = sync }, null, CancellationToken.None);

    [Fact]
    public async Task A_sync_maps_every_record_of_every_page_to_a_document_and_advances_the_cursor()
    {
        await using var stub = await Source();
        var result = await SyncAsync(Manifest(stub.Url), new SyncRequest(false, new Dictionary<string, string>()));
        Assert.True(result.Status == RunStatus.Succeeded, result.Error);
        Assert.True(result.Complete);
        var stream = Assert.Single(result.Streams);
        Assert.Equal("issues", stream.Name);
        Assert.Equal(["1", "2", "3", "4", "5"], stream.Records.Select(r => r.ExternalId));
        var second = stream.Records[1];
        Assert.Equal("#2 Issue 2", second.Title);
        Assert.Equal("https://example.test/issues/2", second.Url);
        Assert.Equal("text/markdown", second.ContentType);
        Assert.Equal("Body of 2", second.Content);
        Assert.Equal("""{"state":"closed","number":2}""", second.MetadataJson);
        // A secret in a response never reaches a document: not its content, title or metadata.
        Assert.Equal("leaks ***", stream.Records[2].Content);
        Assert.Equal("#3 Issue ***", stream.Records[2].Title);
        Assert.Equal("""{"state":"***","number":3}""", stream.Records[2].MetadataJson);
        Assert.Equal("2026-11-15T08:00:00Z", stream.Cursor);
        Assert.Equal(3, result.Pages);
        Assert.Equal(3, result.Requests);
        // No cursor yet: the steps see none (an empty query value is left out).
        Assert.Equal("/issues?full=false", stub.Requests.First().PathAndQuery);
    }

    [Fact]
    public async Task An_incremental_sync_starts_from_the_stored_cursor_moved_back_by_the_look_back_and_never_moves_it_back()
    {
        await using var stub = await Source(total: 0);
        var result = await SyncAsync(Manifest(stub.Url), new SyncRequest(false, new Dictionary<string, string> { ["issues"] = "2026-11-20T08:00:00Z" }));
        Assert.True(result.Status == RunStatus.Succeeded, result.Error);
        Assert.Equal("/issues?since=2026-11-20T07%3A59%3A00Z&full=false", stub.Requests.Single().PathAndQuery);
        Assert.Equal("2026-11-20T08:00:00Z", Assert.Single(result.Streams).Cursor); // nothing newer came back
    }

    [Fact]
    public async Task A_full_refresh_shows_the_steps_no_cursor()
    {
        await using var stub = await Source(total: 1);
        var result = await SyncAsync(Manifest(stub.Url), new SyncRequest(true, new Dictionary<string, string> { ["issues"] = "2026-11-20T08:00:00Z" }));
        Assert.True(result.Status == RunStatus.Succeeded, result.Error);
        Assert.Equal("/issues?full=true", stub.Requests.Single().PathAndQuery);
        Assert.Equal("2026-11-20T08:00:00Z", Assert.Single(result.Streams).Cursor); // what it read is older: the cursor never moves back
    }

    [Fact]
    public async Task A_sync_stopped_by_the_page_limit_is_not_complete_and_a_failed_one_has_no_records()
    {
        await using var stub = await Source(total: 9);
        var limited = await SyncAsync(Manifest(stub.Url, "paginate: { type: cursor, cursor_param: after, cursor_path: \"$.next\", max_pages: 2 }"),
            new SyncRequest(false, new Dictionary<string, string>()));
        Assert.True(limited.Status == RunStatus.Succeeded, limited.Error);
        Assert.False(limited.Complete);
        Assert.Equal(4, Assert.Single(limited.Streams).Records.Count);

        var failed = await SyncAsync(Manifest(stub.Url + "/missing"), new SyncRequest(false, new Dictionary<string, string>()));
        Assert.Equal(RunStatus.Failed, failed.Status);
        Assert.False(failed.Complete);
        Assert.Empty(failed.Streams);
    }

    [Fact]
    public async Task Numeric_cursors_compare_as_numbers_and_an_empty_primary_key_fails_the_sync()
    {
        await using var stub = await Source(total: 10, pageSize: 10);
        var numeric = Manifest(stub.Url).Replace("{{ record.updated_at }}", "{{ record.id }}", StringComparison.Ordinal);
        var result = await SyncAsync(numeric, new SyncRequest(false, new Dictionary<string, string>()));
        Assert.True(result.Status == RunStatus.Succeeded, result.Error);
        Assert.Equal("10", Assert.Single(result.Streams).Cursor); // as text, "9" would be later

        var emptyKey = Manifest(stub.Url).Replace("primary_key: \"{{ record.id }}\"", "primary_key: \"{{ record.missing }}\"", StringComparison.Ordinal);
        Assert.Contains("record.missing", emptyKey, StringComparison.Ordinal);
        var failed = await SyncAsync(emptyKey, new SyncRequest(false, new Dictionary<string, string>()));
        Assert.Equal(RunStatus.Failed, failed.Status);
        Assert.Contains("rendered empty", failed.Error, StringComparison.Ordinal);
        Assert.Empty(failed.Streams);
    }

    [Fact]
    public async Task A_stream_whose_step_was_skipped_fails_rather_than_yielding_no_records()
    {
        await using var stub = await Source();
        var yaml = Manifest(stub.Url).Replace("  - id: list\n", "  - id: list\n    when: \"{{ sync.full_refresh }}\"\n", StringComparison.Ordinal);
        Assert.Contains("when:", yaml, StringComparison.Ordinal);
        var result = await SyncAsync(yaml, new SyncRequest(false, new Dictionary<string, string>()));
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("steps.list.items holds nothing", result.Error, StringComparison.Ordinal);
        Assert.False(result.Complete);
    }

    [Theory]
    [InlineData("steps.nope.items", "record.id", "/streams/0/records", "unknown step 'nope'")]
    [InlineData("steps.list.missing", "record.id", "/streams/0/records", "no extraction 'missing'")]
    [InlineData("list.items", "record.id", "/streams/0/records", "steps.<step id>.<extraction name>")]
    [InlineData("steps.list.items", "credentials.token", "/streams/0/primary_key", "cannot read credentials")]
    public void Streams_are_validated(string records, string primaryKey, string pointer, string message)
    {
        var yaml = $$$"""
            version: 1
            base_url: "http://127.0.0.1:1"
            steps:
              - id: list
                request: { method: GET, path: /x }
                extract: { items: "$.items[*]" }
            streams:
              - name: issues
                records: {{{records}}}
                primary_key: "{{ {{{primaryKey}}} }}"
                document: { content: "{{ record.body }}" }
            """;
        var issues = ManifestParser.Parse(yaml).Issues;
        Assert.Contains(issues, i => i.Pointer == pointer && i.Message.Contains(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{\"x\": \"text\"}")]
    [InlineData("{\"x\": 42}")]
    [InlineData("{\"x\": -9007199254740993}")]
    [InlineData("{\"x\": 1.50}")]
    [InlineData("{\"x\": true}")]
    [InlineData("{\"x\": null}")]
    [InlineData("{}")]
    [InlineData("{\"x\": {\"y\": \"nested\"}}")]
    [InlineData("{\"x\": [1, 2]}")]
    [InlineData("{\"x\": \"2026-11-10T08:00:00Z\"}")]
    public async Task A_record_field_read_directly_renders_and_evaluates_as_Fluid_does(string json)
    {
        var engine = new Plugboard.Engine.Templating.TemplateEngine(1000);
        var record = Newtonsoft.Json.Linq.JToken.Parse(json, new Newtonsoft.Json.Linq.JsonLoadSettings());
        // The same value as `item` goes through Fluid: what `record` gives must be identical.
        var model = new Plugboard.Engine.Templating.TemplateModel { Record = record, Item = record };
        foreach (var path in new[] { "x", "x.y" })
        {
            var direct = Plugboard.Engine.Templating.TemplateEngine.Compile($"{{{{ record.{path} }}}}");
            var fluid = Plugboard.Engine.Templating.TemplateEngine.Compile($"{{{{ item.{path} }}}}");
            Assert.Equal(await engine.RenderAsync(fluid, model), await engine.RenderAsync(direct, model));
            Assert.Equal((await engine.EvaluateAsync(fluid, model)).ToString(Newtonsoft.Json.Formatting.None),
                (await engine.EvaluateAsync(direct, model)).ToString(Newtonsoft.Json.Formatting.None));
        }
    }

    [Fact]
    public void Stream_names_are_unique()
    {
        var issues = ManifestParser.Parse("""
            version: 1
            base_url: "http://127.0.0.1:1"
            steps:
              - id: list
                request: { method: GET, path: /x }
                extract: { items: "$.items[*]" }
            streams:
              - { name: a, records: steps.list.items, primary_key: "{{ record.id }}", document: { content: x } }
              - { name: a, records: steps.list.items, primary_key: "{{ record.id }}", document: { content: x } }
            """).Issues;
        Assert.Contains(issues, i => i.Pointer == "/streams/1/name" && i.Message.Contains("Duplicate stream name 'a'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{ content: x, content_url: \"{{ record.url }}\" }")]
    [InlineData("{ title: x }")]
    [InlineData("{ content_url: \"{{ credentials.token }}\" }")]
    public void A_document_has_either_inline_content_or_a_content_url_without_secrets(string document)
    {
        var issues = ManifestParser.Parse($$$"""
            version: 1
            base_url: "http://127.0.0.1:1"
            steps:
              - { id: list, request: { method: GET, path: /x }, extract: { items: "$.items[*]" } }
            streams:
              - { name: a, records: steps.list.items, primary_key: "{{ record.id }}", document: {{{document}}} }
            """).Issues;
        Assert.Contains(issues, i => i.Pointer.StartsWith("/streams/0/document", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_content_url_that_is_not_an_absolute_url_fails_the_sync()
    {
        await using var stub = await Source();
        var yaml = Manifest(stub.Url).Replace("content: \"{{ record.body }}\"", "content_url: \"files/{{ record.id }}\"", StringComparison.Ordinal);
        var result = await SyncAsync(yaml, new SyncRequest(false, new Dictionary<string, string>()));
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("not an absolute URL", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_mapping_reads_what_a_for_each_step_fetched_for_its_record_by_index()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/pages", () => Results.Json(new { results = new[] { new { id = "p1" }, new { id = "p2" }, new { id = "p3" } } }));
            app.MapGet("/pages/{id}/blocks", (string id) => Results.Json(new { results = new[] { new { text = $"{id} first" }, new { text = $"{id} second" } } }));
        });
        var manifest = $$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - { id: list, request: { method: GET, path: /pages }, extract: { pages: "$.results[*]" } }
              - id: blocks
                for_each: steps.list.pages
                concurrency: 3
                request: { method: GET, path: "/pages/{{ item.id }}/blocks" }
                extract: { texts: "$.results[*].text" }
            streams:
              - name: pages
                records: steps.list.pages
                primary_key: "{{ record.id }}"
                document: { content: "{{ steps.blocks.texts[index] | join: ' / ' }}" }
            """;
        var result = await SyncAsync(manifest, new SyncRequest(false, new Dictionary<string, string>()));
        Assert.True(result.Status == RunStatus.Succeeded, result.Error);
        Assert.Equal(["p1: p1 first / p1 second", "p2: p2 first / p2 second", "p3: p3 first / p3 second"],
            result.Streams.Single().Records.Select(r => $"{r.ExternalId}: {r.Content}"));
    }
}
