using System.Text;
using Plugboard.Features.Documents.Extraction;
using Plugboard.Storage;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Each extractor on files the tests write: structure kept (headings, lists, tables, pages, cues), noise dropped, unreadable files named.</summary>
public sealed class ExtractionTests
{
    private static ExtractedText Extract(byte[] bytes, string type) => Extractor.Extract(new MemoryStream(bytes), type, 64 * 1024 * 1024);

    private static ExtractedText Extract(string text, string type) => Extract(Encoding.UTF8.GetBytes(text), type);

    [Fact]
    public void Markdown_keeps_heading_paths_lists_tables_and_code_without_markup()
    {
        var text = Extract(
            """
            ---
            secret_front_matter: yes
            ---
            # Guide
            Intro with **bold** and a [link text](https://example.test/x).

            ## Setup
            - install the *tool*
            - run `plugboard up`

            | Name | Value |
            |------|-------|
            | port | 5080  |

            ```
            code block line
            ```
            # Appendix
            Last words.
            """, MediaTypes.Markdown);
        Assert.Equal("Guide", text.Title);
        Assert.DoesNotContain(text.Blocks, b => b.Text.Contains("secret_front_matter", StringComparison.Ordinal));
        var intro = Assert.Single(text.Blocks, b => b.Text.StartsWith("Intro", StringComparison.Ordinal));
        Assert.Equal("Intro with bold and a link text.", intro.Text);
        Assert.Equal(["Guide"], intro.HeadingPath);
        var items = text.Blocks.Where(b => b.Kind == BlockKind.ListItem).ToList();
        Assert.Equal(["install the tool", "run plugboard up"], items.Select(i => i.Text));
        Assert.All(items, i => Assert.Equal(["Guide", "Setup"], i.HeadingPath));
        Assert.Contains(text.Blocks, b => b.Kind == BlockKind.TableRow && b.Text == "port | 5080");
        Assert.Contains(text.Blocks, b => b.Kind == BlockKind.Code && b.Text == "code block line");
        Assert.Equal(["Appendix"], Assert.Single(text.Blocks, b => b.Text == "Last words.").HeadingPath);
    }

    [Fact]
    public void Html_drops_scripts_styles_and_navigation_and_keeps_structure()
    {
        var text = Extract(
            """
            <html><head><title>Tide Tables</title><style>body { color: red }</style><script>var secret = "drop me";</script></head>
            <body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
            <header>Site banner</header>
            <h1>Tides</h1><p>High tide at <b>06:12</b>.</p>
            <div>Loose text in a div</div>
            <h2>Harbour</h2><ul><li>Pier one<ul><li>Berth A</li></ul></li></ul>
            <table><tr><th>Day</th><th>Height</th></tr><tr><td>Mon</td><td>4.1 m</td></tr></table>
            <footer>Copyright</footer><noscript>enable js</noscript></body></html>
            """, MediaTypes.Html);
        Assert.Equal("Tide Tables", text.Title);
        var all = string.Join("\n", text.Blocks.Select(b => b.Text));
        foreach (var dropped in new[] { "drop me", "color: red", "Home", "Site banner", "Copyright", "enable js" })
        {
            Assert.DoesNotContain(dropped, all, StringComparison.Ordinal);
        }
        Assert.Equal(["Tides"], Assert.Single(text.Blocks, b => b.Text == "High tide at 06:12.").HeadingPath);
        Assert.Contains(text.Blocks, b => b.Text == "Loose text in a div");
        Assert.Equal(["Tides", "Harbour"], Assert.Single(text.Blocks, b => b.Kind == BlockKind.ListItem && b.Text == "Pier one").HeadingPath);
        Assert.Contains(text.Blocks, b => b.Kind == BlockKind.ListItem && b.Text == "Berth A");
        Assert.Contains(text.Blocks, b => b.Kind == BlockKind.TableRow && b.Text == "Mon | 4.1 m");
    }

    [Fact]
    public void Pdf_text_comes_in_reading_order_with_pages_and_without_running_headers_and_footers()
    {
        var text = Extract(SampleDocuments.Pdf(
            ["Lighthouses guide ships at night.", "Each light has its own pattern."],
            ["Fog signals sound when the light cannot be seen."],
            ["Keepers logged every ship that passed."]), MediaTypes.Pdf);
        var all = string.Join("\n", text.Blocks.Select(b => b.Text));
        Assert.Contains("Lighthouses guide ships at night.", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Confidential", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Page 2", all, StringComparison.Ordinal);
        Assert.Equal(1, Assert.Single(text.Blocks, b => b.Text.Contains("guide ships", StringComparison.Ordinal)).Page);
        Assert.Equal(2, Assert.Single(text.Blocks, b => b.Text.Contains("Fog signals", StringComparison.Ordinal)).Page);
        Assert.Equal(3, Assert.Single(text.Blocks, b => b.Text.Contains("Keepers logged", StringComparison.Ordinal)).Page);
        var first = text.Blocks.ToList().FindIndex(b => b.Text.Contains("guide ships", StringComparison.Ordinal));
        var second = text.Blocks.ToList().FindIndex(b => b.Text.Contains("own pattern", StringComparison.Ordinal));
        Assert.True(first <= second, "the first line is read before the second");
    }

    [Fact]
    public void Unreadable_pdfs_fail_with_a_reason_a_user_understands()
    {
        var encrypted = Assert.Throws<DocumentUnreadableException>(() => Extract(SampleDocuments.EncryptedPdf(), MediaTypes.Pdf));
        Assert.Contains("encrypted", encrypted.Message, StringComparison.Ordinal);
        var scanned = Assert.Throws<DocumentUnreadableException>(() => Extract(SampleDocuments.PdfWithoutText(), MediaTypes.Pdf));
        Assert.Contains("no text layer", scanned.Message, StringComparison.Ordinal);
        var corrupt = Assert.Throws<DocumentUnreadableException>(() => Extract(Encoding.ASCII.GetBytes("%PDF-1.7\nthis is not a pdf at all"), MediaTypes.Pdf));
        Assert.Contains("corrupt", corrupt.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Docx_keeps_title_heading_paths_list_items_and_table_rows()
    {
        var text = Extract(SampleDocuments.Docx(), MediaTypes.Docx);
        Assert.Equal("Field Guide to Lighthouses", text.Title);
        Assert.Equal(["Field Guide to Lighthouses", "Lenses"],
            Assert.Single(text.Blocks, b => b.Text.StartsWith("The Fresnel", StringComparison.Ordinal)).HeadingPath);
        var items = text.Blocks.Where(b => b.Kind == BlockKind.ListItem).ToList();
        Assert.Equal(2, items.Count);
        Assert.All(items, i => Assert.Equal(["Field Guide to Lighthouses", "Lenses", "Orders"], i.HeadingPath));
        Assert.Contains(text.Blocks, b => b.Kind == BlockKind.TableRow && b.Text == "First | 920 mm");
        Assert.Equal(["Field Guide to Lighthouses", "Keepers"], Assert.Single(text.Blocks, b => b.Text.StartsWith("Keepers trimmed", StringComparison.Ordinal)).HeadingPath);
    }

    [Fact]
    public void A_docx_that_inflates_past_the_limit_is_refused_before_it_is_opened()
    {
        var docx = SampleDocuments.Docx();
        var refused = Assert.Throws<DocumentUnreadableException>(() => Extractor.Extract(new MemoryStream(docx), MediaTypes.Docx, maxUncompressedBytes: 1024));
        Assert.Contains("zip bomb", refused.Message, StringComparison.Ordinal);

        // A part named like no XML part counts too: the SDK finds parts by their relationships, not their names.
        long xml;
        using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(docx)))
        {
            xml = zip.Entries.Sum(e => e.Length);
        }
        Assert.NotEmpty(Extractor.Extract(new MemoryStream(docx), MediaTypes.Docx, maxUncompressedBytes: xml + 4096).Blocks);
        var padded = new MemoryStream();
        padded.Write(docx);
        using (var zip = new System.IO.Compression.ZipArchive(padded, System.IO.Compression.ZipArchiveMode.Update, leaveOpen: true))
        using (var filler = zip.CreateEntry("word/document-part.bin").Open())
        {
            filler.Write(new byte[64 * 1024]);
        }
        padded.Position = 0;
        var bomb = Assert.Throws<DocumentUnreadableException>(() => Extractor.Extract(padded, MediaTypes.Docx, maxUncompressedBytes: xml + 4096));
        Assert.Contains("zip bomb", bomb.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Teams_and_zoom_transcripts_keep_speakers_and_time_ranges()
    {
        var teams = Extract(SampleDocuments.TeamsVtt, MediaTypes.WebVtt).Blocks;
        Assert.Equal(3, teams.Count);
        Assert.Equal(("Ada Lovelace", 1000L, 4500L), (teams[0].Speaker, teams[0].StartMs, teams[0].EndMs));
        Assert.Equal("Ada Lovelace: Welcome everyone to the engine review.", teams[0].Text); // a turn names its speaker once
        Assert.Equal("Today we look at the analytical engine.", teams[1].Text);
        Assert.Equal(("Charles Babbage", 62250L, 65000L), (teams[2].Speaker, teams[2].StartMs, teams[2].EndMs));
        Assert.DoesNotContain(teams, b => b.Text.Contains("comment", StringComparison.Ordinal));

        var zoom = Extract(SampleDocuments.ZoomSrt, MediaTypes.SubRip).Blocks;
        Assert.Equal(2, zoom.Count);
        Assert.Equal(("Grace Hopper", "Grace Hopper: We found a moth in relay seventy."), (zoom[0].Speaker, zoom[0].Text));
        Assert.Equal("It is taped into the log book.", zoom[1].Text);
        Assert.Equal((3723400L, 3726000L), (zoom[1].StartMs!.Value, zoom[1].EndMs!.Value));
    }

    [Fact]
    public void Json_becomes_searchable_path_value_lines_and_invalid_json_is_named()
    {
        var text = Extract("""{"title": "Order 42", "customer": {"name": "Ada", "tags": ["vip", "early"]}, "total": 12.5, "note": null}""", MediaTypes.Json);
        Assert.Equal("Order 42", text.Title);
        var customer = Assert.Single(text.Blocks, b => b.HeadingPath.SequenceEqual(["customer"]));
        Assert.Equal("customer.name: Ada\ncustomer.tags[0]: vip\ncustomer.tags[1]: early", customer.Text);
        Assert.Contains(text.Blocks, b => b.Text == "total: 12.5");
        var invalid = Assert.Throws<DocumentUnreadableException>(() => Extract("{\"a\": ", MediaTypes.Json));
        Assert.Contains("not valid", invalid.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_text_splits_on_blank_lines_and_empty_text_is_refused()
    {
        var text = Extract("first line\nsecond line\n\n\nnext paragraph\n", MediaTypes.PlainText);
        Assert.Equal(["first line\nsecond line", "next paragraph"], text.Blocks.Select(b => b.Text));
        Assert.Throws<DocumentUnreadableException>(() => Extract("   \n\n  ", MediaTypes.PlainText));
    }

    [Fact]
    public void Hostile_shapes_are_bounded_long_runs_broken_long_headings_cut_deep_nesting_refused_not_fatal()
    {
        var run = new string('q', 300_000);
        var text = Extract($"start {run} end", MediaTypes.PlainText);
        Assert.All(text.Blocks, b => Assert.DoesNotMatch(@"\S{129}", b.Text));
        Assert.Equal(300_000 + "start  end".Length + 300_000 / Extractor.MaxRunCharacters, text.Blocks.Sum(b => b.Text.Length));

        var heading = Extract("# " + string.Join(' ', Enumerable.Range(0, 5000).Select(i => $"w{i}")) + "\n\nbody", MediaTypes.Markdown);
        Assert.All(heading.Blocks, b => Assert.All(b.HeadingPath, h => Assert.True(h.Length <= Extractor.MaxHeadingCharacters)));
        Assert.True(heading.Title!.Length <= Extractor.MaxHeadingCharacters);

        var longKey = Extract("{\"" + new string('k', 100_000) + "\": [" + string.Join(",", Enumerable.Range(0, 2000)) + "]}", MediaTypes.Json);
        Assert.True(longKey.Blocks.Sum(b => b.Text.Length) < 2000 * 300, "a long key does not repeat in full on every line");

        var nested = string.Concat(Enumerable.Repeat("<div>", 50_000)) + "deep text" + string.Concat(Enumerable.Repeat("</div>", 50_000));
        try
        {
            Assert.Contains(Extract($"<html><body>{nested}</body></html>", MediaTypes.Html).Blocks, b => b.Text.Contains("deep text", StringComparison.Ordinal));
        }
        catch (DocumentUnreadableException e)
        {
            Assert.Contains("nested too deeply", e.Message, StringComparison.Ordinal);
        }
    }
}
