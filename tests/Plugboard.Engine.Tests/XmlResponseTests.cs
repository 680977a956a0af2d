using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Running;
using Plugboard.Testing;

namespace Plugboard.Engine.Tests;

/// <summary>XML responses (RSS, Atom) are read with the same path language as JSON, and a hostile XML body is text, never expanded.</summary>
public sealed class XmlResponseTests
{
    private const string Rss = """
        <?xml version="1.0" encoding="UTF-8"?>
        <rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">
          <channel>
            <title>Release notes</title>
            <item>
              <title>Version 2.1</title>
              <link>https://example.test/releases/2.1</link>
              <guid isPermaLink="false">rel-21</guid>
              <dc:creator>Ada</dc:creator>
              <pubDate>Tue, 01 Dec 2026 09:00:00 GMT</pubDate>
              <content:encoded><![CDATA[<p>Faster <b>syncs</b></p>]]></content:encoded>
            </item>
            <item>
              <title>Version 2.0</title>
              <link>https://example.test/releases/2.0</link>
              <guid isPermaLink="false">rel-20</guid>
              <dc:creator>Grace</dc:creator>
              <content:encoded><![CDATA[<p>Streams</p>]]></content:encoded>
            </item>
          </channel>
        </rss>
        """;

    private const string Atom = """
        <feed xmlns="http://www.w3.org/2005/Atom">
          <title>Changes</title>
          <entry>
            <id>urn:uuid:1</id>
            <title type="text">One entry only</title>
            <link rel="alternate" href="https://example.test/one"/>
            <updated>2026-12-01T10:00:00Z</updated>
            <summary>Just one</summary>
          </entry>
        </feed>
        """;

    private static Task<Stub> Serve(string path, string body, string type = "application/rss+xml") =>
        Stub.StartAsync(app => app.MapGet(path, () => Results.Text(body, type, Encoding.UTF8)));

    [Fact]
    public async Task An_rss_feed_is_read_with_json_paths_attributes_namespaced_names_and_cdata_included()
    {
        await using var stub = await Serve("/feed.xml", Rss);
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: feed
                request: { method: GET, path: /feed.xml }
                extract:
                  channel: "$.rss.channel.title"
                  version: "$.rss['@version']"
                  titles: "$.rss.channel.item[*].title"
                  guids: "$.rss.channel.item[*].guid['#text']"
                  authors: "$.rss.channel.item[*]['dc:creator']"
                  first_html: "$.rss.channel.item[0]['content:encoded']"
            """);
        Engine.Succeeded(result);
        var feed = result.Output!["feed"]!;
        Assert.Equal("Release notes", feed["channel"]!.GetValue<string>());
        Assert.Equal("2.0", feed["version"]!.GetValue<string>());
        Assert.Equal(["Version 2.1", "Version 2.0"], feed["titles"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(["rel-21", "rel-20"], feed["guids"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(["Ada", "Grace"], feed["authors"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.True(feed["first_html"] is System.Text.Json.Nodes.JsonValue, feed.ToJsonString());
        Assert.Equal("<p>Faster <b>syncs</b></p>", feed["first_html"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_feed_with_one_entry_syncs_that_entry_as_one_record()
    {
        await using var stub = await Serve("/atom", Atom, "application/atom+xml");
        var manifest = Engine.Manifest($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: feed
                request: { method: GET, path: /atom }
                extract: { entries: "$.feed.entry" }
            streams:
              - name: entries
                records: steps.feed.entries
                primary_key: "{{ record.id }}"
                cursor: { field: "{{ record.updated }}" }
                document:
                  title: "{{ record.title['#text'] }}"
                  url: "{{ record.link['@href'] }}"
                  content_type: text/plain
                  content: "{{ record.summary }}"
            """);
        var sync = await new ConnectorRunner(Engine.Client(), Engine.FastOptions).SyncAsync(manifest,
            new RunRequest([], [], new Dictionary<string, string>()) { Sync = new SyncRequest(false, new Dictionary<string, string>()) }, null, CancellationToken.None);
        Assert.True(sync.Status == RunStatus.Succeeded, sync.Error);
        var record = Assert.Single(Assert.Single(sync.Streams).Records);
        Assert.Equal(("urn:uuid:1", "One entry only", "https://example.test/one", "Just one", "2026-12-01T10:00:00Z"),
            (record.ExternalId, record.Title, record.Url, record.Content, record.Cursor));
    }

    [Theory]
    [InlineData("""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>""")]
    [InlineData("""<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>""")]
    [InlineData("<a><b>not closed</a>")]
    public async Task A_dtd_entity_or_malformed_xml_is_kept_as_text_and_never_expanded(string body)
    {
        await using var stub = await Serve("/x", body, "application/xml");
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: x
                request: { method: GET, path: /x }
                extract: { whole: "$", root: "$.lolz" }
            """);
        Engine.Succeeded(result);
        Assert.Equal(body, result.Output!["x"]!["whole"]!.GetValue<string>());
        Assert.Null(result.Output!["x"]!["root"]);
        Assert.DoesNotContain("root:", result.Output.ToJsonString());
    }

    [Fact]
    public async Task Xml_nested_deeper_than_64_levels_is_text_not_a_stack_overflow()
    {
        var deep = string.Concat(Enumerable.Repeat("<a>", 100_000)) + string.Concat(Enumerable.Repeat("</a>", 100_000));
        await using var stub = await Serve("/deep", deep, "application/xml");
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: deep
                request: { method: GET, path: /deep }
                extract: { first: "$.a" }
            """);
        Engine.Succeeded(result);
        Assert.Null(result.Output!["deep"]!["first"]);
    }

    [Theory]
    [InlineData("rss")]
    [InlineData("atom")]
    [InlineData("rss-one")]
    public async Task One_union_path_reads_rss_items_and_atom_entries_alike(string kind)
    {
        var body = kind switch
        {
            "rss" => Rss,
            "atom" => Atom,
            _ => "<rss><channel><title>t</title><item><guid>only</guid><title>Only item</title></item></channel></rss>",
        };
        await using var stub = await Serve("/feed", body, "application/xml");
        var manifest = Engine.Manifest($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - { id: feed, request: { method: GET, path: /feed }, extract: { entries: "$..['item','entry']" } }
            streams:
              - name: entries
                records: steps.feed.entries
                primary_key: "{% if record.guid %}{{ record.guid['#text'] | default: record.guid }}{% else %}{{ record.id }}{% endif %}"
                document: { title: "{{ record.title['#text'] | default: record.title }}", content: "{{ record['dc:creator'] }}" }
            """);
        var sync = await new ConnectorRunner(Engine.Client(), Engine.FastOptions).SyncAsync(manifest,
            new RunRequest([], [], new Dictionary<string, string>()) { Sync = new SyncRequest(false, new Dictionary<string, string>()) }, null, CancellationToken.None);
        Assert.True(sync.Status == RunStatus.Succeeded, sync.Error);
        var records = sync.Streams.Single().Records;
        var expected = kind switch
        {
            "rss" => new[] { "rel-21|Version 2.1|Ada", "rel-20|Version 2.0|Grace" },
            "atom" => ["urn:uuid:1|One entry only|"],
            _ => ["only|Only item|"],
        };
        Assert.Equal(expected, records.Select(r => $"{r.ExternalId}|{r.Title}|{r.Content}"));
    }

    [Fact]
    public async Task Whitespace_before_the_declaration_is_read_and_a_body_of_too_many_elements_stays_text()
    {
        var many = "<r>" + string.Concat(Enumerable.Repeat("<b/>", 100_001)) + "</r>";
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/spaced", () => Results.Text("\n  " + Rss, "application/rss+xml"));
            app.MapGet("/many", () => Results.Text(many, "application/xml"));
        });
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - { id: spaced, request: { method: GET, path: /spaced }, extract: { title: "$.rss.channel.title" } }
              - { id: many, request: { method: GET, path: /many }, extract: { root: "$.r" } }
            """);
        Engine.Succeeded(result);
        Assert.Equal("Release notes", result.Output!["spaced"]!["title"]!.GetValue<string>());
        Assert.Null(result.Output!["many"]!["root"]);
    }
}
