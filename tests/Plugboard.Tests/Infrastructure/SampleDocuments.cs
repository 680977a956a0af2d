using System.Text;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;

namespace Plugboard.Tests.Infrastructure;

/// <summary>Documents the tests write with the same libraries that read them (PdfPig writes PDFs, the Open XML SDK writes DOCX).</summary>
public static class SampleDocuments
{
    /// <summary>A PDF with one page per entry: each page a running header and footer (with the page number) around its lines.</summary>
    public static byte[] Pdf(params string[][] pages)
    {
        var builder = new PdfDocumentBuilder();
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        for (var p = 0; p < pages.Length; p++)
        {
            var page = builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4);
            page.AddText("ACME Quarterly Review — Confidential", 9, new PdfPoint(40, 810), font);
            var y = 740.0;
            foreach (var line in pages[p])
            {
                page.AddText(line, 12, new PdfPoint(60, y), font);
                y -= 40;
            }
            page.AddText($"Page {p + 1}", 9, new PdfPoint(280, 30), font);
        }
        return builder.Build();
    }

    /// <summary>A PDF whose only page has no text at all (a scan, as far as text extraction can tell).</summary>
    public static byte[] PdfWithoutText()
    {
        var builder = new PdfDocumentBuilder();
        var page = builder.AddPage(UglyToad.PdfPig.Content.PageSize.A4);
        page.DrawRectangle(new PdfPoint(50, 50), 200, 300);
        return builder.Build();
    }

    /// <summary>A PDF that declares standard encryption with a user password nobody knows.</summary>
    public static byte[] EncryptedPdf()
    {
        var o = new string('A', 64);
        var u = new string('B', 64);
        var objects = new[]
        {
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R >>",
            $"<< /Filter /Standard /V 2 /R 3 /Length 128 /O <{o}> /U <{u}> /P -3904 >>",
            "<< /Length 10 >>\nstream\n0123456789\nendstream",
        };
        var pdf = new StringBuilder("%PDF-1.6\n");
        var offsets = new List<int>();
        for (var i = 0; i < objects.Length; i++)
        {
            offsets.Add(Encoding.ASCII.GetByteCount(pdf.ToString()));
            pdf.Append($"{i + 1} 0 obj\n{objects[i]}\nendobj\n");
        }
        var xref = Encoding.ASCII.GetByteCount(pdf.ToString());
        pdf.Append($"xref\n0 {objects.Length + 1}\n0000000000 65535 f \n");
        foreach (var offset in offsets)
        {
            pdf.Append($"{offset:D10} 00000 n \n");
        }
        pdf.Append($"trailer\n<< /Size {objects.Length + 1} /Root 1 0 R /Encrypt 4 0 R /ID [<{new string('C', 32)}> <{new string('C', 32)}>] >>\nstartxref\n{xref}\n%%EOF\n");
        return Encoding.ASCII.GetBytes(pdf.ToString());
    }

    /// <summary>A DOCX: a title, headings, body paragraphs, a bulleted list and a table.</summary>
    public static byte[] Docx()
    {
        using var buffer = new MemoryStream();
        using (var document = WordprocessingDocument.Create(buffer, WordprocessingDocumentType.Document))
        {
            var main = document.AddMainDocumentPart();
            var body = new Body();
            main.Document = new Document(body);
            body.Append(Styled("Title", "Field Guide to Lighthouses"));
            body.Append(Styled("Heading1", "Lenses"));
            body.Append(Plain("The Fresnel lens focuses the lamp into a beam visible for twenty nautical miles."));
            body.Append(Styled("Heading2", "Orders"));
            body.Append(Bullet("First order lenses stand taller than a person."));
            body.Append(Bullet("Sixth order lenses fit on a desk."));
            body.Append(new Table(
                new TableRow(Cell("Order"), Cell("Focal length")),
                new TableRow(Cell("First"), Cell("920 mm"))));
            body.Append(Styled("Heading1", "Keepers"));
            body.Append(Plain("Keepers trimmed the wicks every night."));
        }
        return buffer.ToArray();
    }

    private static Paragraph Styled(string style, string text) =>
        new(new ParagraphProperties(new ParagraphStyleId { Val = style }), new Run(new Text(text)));

    private static Paragraph Plain(string text) => new(new Run(new Text(text)));

    private static Paragraph Bullet(string text) =>
        new(new ParagraphProperties(new NumberingProperties(new NumberingLevelReference { Val = 0 }, new NumberingId { Val = 1 })), new Run(new Text(text)));

    private static TableCell Cell(string text) => new(new Paragraph(new Run(new Text(text))));

    /// <summary>A Teams-style WebVTT transcript (speakers as voice spans).</summary>
    public const string TeamsVtt =
        """
        WEBVTT

        0f3a1b2c-1
        00:00:01.000 --> 00:00:04.500
        <v Ada Lovelace>Welcome everyone to the engine review.</v>

        0f3a1b2c-2
        00:00:04.500 --> 00:00:09.000
        <v Ada Lovelace>Today we look at the <c.highlight>analytical</c> engine.</v>

        0f3a1b2c-3
        00:01:02.250 --> 00:01:05.000
        <v Charles Babbage>The mill needs more brass gears.</v>

        NOTE this is a comment that never becomes text
        """;

    /// <summary>A Zoom-style transcript (speakers as "Name:" prefixes) in SubRip form.</summary>
    public const string ZoomSrt =
        """
        1
        00:00:00,000 --> 00:00:03,200
        Grace Hopper: We found a moth in relay seventy.

        2
        01:02:03,400 --> 01:02:06,000
        Grace Hopper: It is taped into the log book.
        """;
}
