using UglyToad.PdfPig;
using UglyToad.PdfPig.DocumentLayoutAnalysis.PageSegmenter;
using UglyToad.PdfPig.DocumentLayoutAnalysis.ReadingOrderDetector;
using UglyToad.PdfPig.DocumentLayoutAnalysis.WordExtractor;
using UglyToad.PdfPig.Exceptions;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// PDF through PdfPig's layout analysis: words by nearest neighbour (PDFs without spaces still split), text blocks by
/// Docstrum, blocks in PdfPig's unsupervised reading order, and lines repeated in the top or bottom tenth of the pages (running
/// headers, footers, printed page numbers) dropped. Each block keeps the page it is on.
/// </summary>
public static partial class PdfExtractor
{
    private const double MarginShare = 0.1;

    public static ExtractedText Extract(Stream content)
    {
        try
        {
            using var document = PdfDocument.Open(content, new ParsingOptions { UseLenientParsing = true, SkipMissingFonts = true });
            var pages = new List<(int Number, double Height, IReadOnlyList<UglyToad.PdfPig.DocumentLayoutAnalysis.TextBlock> Blocks)>();
            foreach (var page in document.GetPages())
            {
                var words = NearestNeighbourWordExtractor.Instance.GetWords(page.Letters).ToList();
                var blocks = words.Count == 0 ? [] : DocstrumBoundingBoxes.Instance.GetBlocks(words);
                pages.Add((page.Number, page.Height, UnsupervisedReadingOrderDetector.Instance.Get(blocks).ToList()));
            }
            var decorations = Decorations(pages);
            var result = new List<TextBlock>();
            foreach (var (number, height, blocks) in pages)
            {
                foreach (var block in blocks)
                {
                    // Line by line: a header close above the body may sit in the same block as its first lines.
                    var kept = block.TextLines.Where(l => !(InMargin(l.BoundingBox, height) && decorations.Contains(Shape(Extractor.Normalize(l.Text)))));
                    var text = Extractor.Normalize(string.Join(" ", kept.Select(l => l.Text)));
                    if (text.Length > 0)
                    {
                        result.Add(new TextBlock(BlockKind.Paragraph, text, [], Page: number));
                    }
                }
            }
            var title = document.Information.Title is { Length: > 0 } t ? Extractor.Normalize(t) : null;
            return new ExtractedText(result, title);
        }
        catch (PdfDocumentEncryptedException e)
        {
            throw new DocumentUnreadableException("The PDF is encrypted with a password; upload a copy without the password.", e);
        }
        catch (Exception e) when (e is not (OperationCanceledException or OutOfMemoryException or DocumentUnreadableException))
        {
            // PdfPig reports a damaged file with its own exceptions and, deeper in, with whatever the parser tripped on.
            throw new DocumentUnreadableException("The PDF is corrupt and cannot be read; export it again and upload the new file.", e);
        }
    }

    /// <summary>
    /// Running headers and footers: lines in the top or bottom tenth of a page that repeats (digits aside, so "Page 3"
    /// matches "Page 4") in that band on at least half the pages, and at least two; a bare page number in the band always is.
    /// </summary>
    private static HashSet<string> Decorations(List<(int Number, double Height, IReadOnlyList<UglyToad.PdfPig.DocumentLayoutAnalysis.TextBlock> Blocks)> pages)
    {
        var counts = new Dictionary<string, int>();
        foreach (var (_, height, blocks) in pages)
        {
            foreach (var shape in blocks.SelectMany(b => b.TextLines).Where(l => InMargin(l.BoundingBox, height)).Select(l => Shape(Extractor.Normalize(l.Text))).Distinct())
            {
                counts[shape] = counts.GetValueOrDefault(shape) + 1;
            }
        }
        var needed = Math.Max(2, (pages.Count + 1) / 2);
        var result = counts.Where(c => c.Value >= needed).Select(c => c.Key).ToHashSet();
        foreach (var pageNumber in new[] { "#", "page #", "# / #", "#/#", "page # of #", "- # -", "— # —" })
        {
            result.Add(pageNumber);
        }
        return result;
    }

    private static bool InMargin(UglyToad.PdfPig.Core.PdfRectangle box, double height) =>
        height > 0 && (box.Bottom > height * (1 - MarginShare) || box.Top < height * MarginShare);

    private static string Shape(string text) => DigitRuns().Replace(text.ToLowerInvariant(), "#");

    [System.Text.RegularExpressions.GeneratedRegex(@"\d+")]
    private static partial System.Text.RegularExpressions.Regex DigitRuns();
}
