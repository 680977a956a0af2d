using System.Net.Http.Json;
using System.Text.Json;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Workspace search: web-search syntax, ranking that favours titles and headings, HTML-safe snippets, filters, pages, locations.</summary>
[Collection(ServerCollection.Name)]
public sealed class SearchTests(PlugboardServer server)
{
    private static Task<List<JsonElement>> Hits(TeamWorkspace team, string q, string extra = "") => DocumentTests.HitsAsync(team.Viewer, team.Id, q, extra);

    private static async Task<Guid> Ready(TeamWorkspace team, string name, string text)
    {
        var id = await team.Member.Http.AcceptedAsync(team.Id, name, text);
        Assert.Equal("completed", (await team.Member.Http.SettledAsync(team.Id, id)).GetProperty("processing_status").GetString());
        return id;
    }

    [Fact]
    public async Task Titles_and_headings_outrank_body_text()
    {
        var team = await server.TeamAsync();
        var body = await Ready(team, "notes.md", "# Harbour notes\n\nThe keeper checked the lantern before dusk and wrote the weather in the log.");
        var heading = await Ready(team, "manual.md", "# Station manual\n\n## Lantern care\n\nWipe the glass and trim the wick before dusk.");
        var title = await Ready(team, "lantern.md", "# Lantern\n\nA short page about brass fittings and wick trimming before dusk.");
        var hits = await Hits(team, "lantern");
        Assert.Equal([title, heading, body], hits.Select(h => h.GetProperty("document_id").GetGuid()));
        Assert.Equal(["Station manual", "Lantern care"], hits[1].GetProperty("heading_path").EnumerateArray().Select(h => h.GetString()));
        Assert.True(hits[0].GetProperty("rank").GetSingle() > hits[2].GetProperty("rank").GetSingle());
    }

    [Fact]
    public async Task Web_search_syntax_quotes_excludes_and_alternates()
    {
        var team = await server.TeamAsync();
        var phrase = await Ready(team, "a.txt", "The fresnel lens bends light into a beam.");
        var apart = await Ready(team, "b.txt", "A lens was fitted; fresnel designs came later. Fog hid it.");
        var other = await Ready(team, "c.txt", "Whales passed the reef at dawn.");
        Assert.Equal([phrase], (await Hits(team, "\"fresnel lens\"")).Select(h => h.GetProperty("document_id").GetGuid()));
        Assert.Equal([phrase], (await Hits(team, "fresnel -fog")).Select(h => h.GetProperty("document_id").GetGuid()));
        Assert.Equal(new[] { apart, other }.Order(), (await Hits(team, "whales or fog")).Select(h => h.GetProperty("document_id").GetGuid()).Order());
        Assert.Empty(await Hits(team, "the and of")); // only stop words: nothing to find, and no error
    }

    [Fact]
    public async Task Snippets_are_html_encoded_with_only_marks_around_matches()
    {
        var team = await server.TeamAsync();
        await Ready(team, "x.html", "<html><body><p>Beware &lt;script&gt;alert('owned')&lt;/script&gt; near the lighthouse beam &amp; rocks.</p></body></html>");
        var hit = Assert.Single(await Hits(team, "beams"));
        var snippet = hit.GetProperty("snippet").GetString()!;
        Assert.Contains("<mark>beam</mark>", snippet, StringComparison.Ordinal);
        Assert.Contains("alert(&#39;owned&#39;)", snippet, StringComparison.Ordinal);
        Assert.Contains("&amp;", snippet, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", snippet, StringComparison.Ordinal);
        await Ready(team, "y.txt", "the signal a < b & c > d goes up");
        var text = Assert.Single(await Hits(team, "signal")).GetProperty("snippet").GetString()!;
        Assert.Contains("a &lt; b &amp; c &gt; d", text, StringComparison.Ordinal);
        Assert.Contains("<mark>signal</mark>", text, StringComparison.Ordinal);
        Assert.Equal(snippet.Split("<mark>").Length - 1, snippet.Split("</mark>").Length - 1);
        Assert.Equal(snippet.Split('<').Length - 1, (snippet.Split("<mark>").Length - 1) * 2);
    }

    [Fact]
    public async Task Filters_and_cursor_pages_cover_every_hit_once()
    {
        var team = await server.TeamAsync();
        var batch = (await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/uploads/batches", new { expected_files = 2 })).AssertStatusAsync(201))
            .GetProperty("id").GetGuid();
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            var response = await team.Member.Http.UploadAsync(team.Id, $"tide-{i}.{(i < 2 ? "md" : "txt")}", $"Tide table {i}: the tide turns at {i} o'clock.", batchId: i < 2 ? batch : null);
            var id = (await response.AssertStatusAsync(201)).GetProperty("files")[0].GetProperty("document_id").GetGuid();
            await team.Member.Http.SettledAsync(team.Id, id);
            ids.Add(id);
        }
        Assert.Equal(ids.Take(2).Order(), (await Hits(team, "tide", $"&batch_id={batch}")).Select(h => h.GetProperty("document_id").GetGuid()).Order());
        Assert.Equal(3, (await Hits(team, "tide", "&content_type=text/plain")).Count);
        Assert.Equal(5, (await Hits(team, "tide", "&source=upload")).Count);
        Assert.Empty(await Hits(team, "tide", "&source=sync"));
        Assert.Empty(await Hits(team, "tide", $"&since={DateTime.UtcNow.AddMinutes(5):O}"));

        var seen = new List<Guid>();
        string? cursor = null;
        do
        {
            var page = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q=tide&limit=2{(cursor is null ? "" : "&cursor=" + cursor)}")).AssertStatusAsync(200);
            var items = page.GetProperty("items").EnumerateArray().ToList();
            Assert.InRange(items.Count, 1, 2);
            seen.AddRange(items.Select(h => h.GetProperty("document_id").GetGuid()));
            cursor = page.GetProperty("next_cursor").GetString();
        }
        while (cursor is not null);
        Assert.Equal(ids.Order(), seen.Order());

        var other = await server.TeamAsync();
        var first = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q=tide&limit=1")).AssertStatusAsync(200);
        await (await other.Owner.Http.GetAsync($"/v1/workspaces/{other.Id}/search?q=tide&cursor={first.GetProperty("next_cursor").GetString()}")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q={new string('a', 1001)}")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q=x&source=elsewhere")).AssertProblemAsync(400);
    }

    [Fact]
    public async Task Hits_say_where_they_are_pages_of_pdfs_and_speakers_and_times_of_transcripts()
    {
        var team = await server.TeamAsync();
        var pdf = await team.Member.Http.UploadAsync(team.Id, "guide.pdf", SampleDocuments.Pdf(["Ships pass the point."], ["The foghorn answers the ferry."]), "application/pdf");
        var pdfId = (await pdf.AssertStatusAsync(201)).GetProperty("files")[0].GetProperty("document_id").GetGuid();
        await team.Member.Http.SettledAsync(team.Id, pdfId);
        var vtt = await Ready(team, "review.vtt", SampleDocuments.TeamsVtt);

        var page = Assert.Single(await Hits(team, "foghorn"));
        Assert.InRange(2, page.GetProperty("page_start").GetInt32(), page.GetProperty("page_end").GetInt32());
        Assert.Equal("guide.pdf", page.GetProperty("file_name").GetString());

        var cue = Assert.Single(await Hits(team, "brass gears"));
        Assert.Equal(vtt, cue.GetProperty("document_id").GetGuid());
        // The short transcript is one chunk of two speakers: its time range covers the cue, the snippet names who spoke.
        Assert.InRange(62250, cue.GetProperty("start_ms").GetInt64(), cue.GetProperty("end_ms").GetInt64());
        Assert.Equal(65000, cue.GetProperty("end_ms").GetInt64());
        Assert.Contains("Charles Babbage", cue.GetProperty("snippet").GetString(), StringComparison.Ordinal);
        var speaker = Assert.Single(await Hits(team, "lovelace"));
        Assert.Equal(vtt, speaker.GetProperty("document_id").GetGuid());
    }
}
