using UglyToad.PdfPig;
using UglyToad.PdfPig.DocumentLayoutAnalysis;
using UglyToad.PdfPig.DocumentLayoutAnalysis.PageSegmenter;
using UglyToad.PdfPig.DocumentLayoutAnalysis.ReadingOrderDetector;
using UglyToad.PdfPig.DocumentLayoutAnalysis.WordExtractor;
using UglyToad.PdfPig.Exceptions;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// PDF through PdfPig's layout analysis: words by nearest neighbour (PDFs without spaces still split), text blocks by
/// Docstrum, blocks in reading order, and blocks repeated at the page borders (running headers, footers, printed page
/// numbers) dropped. Each block keeps the page it is on.
/// </summary>
public static class PdfExtractor
{
    public static ExtractedText Extract(Stream content)
    {
        try
        {
            using var document = PdfDocument.Open(content, new ParsingOptions { UseLenientParsing = true, SkipMissingFonts = true });
            var pageNumbers = new List<int>();
            var pageBlocks = new List<IReadOnlyList<UglyToad.PdfPig.DocumentLayoutAnalysis.TextBlock>>();
            foreach (var page in document.GetPages())
            {
                var words = NearestNeighbourWordExtractor.Instance.GetWords(page.Letters).ToList();
                var blocks = words.Count == 0 ? [] : DocstrumBoundingBoxes.Instance.GetBlocks(words);
                var ordered = UnsupervisedReadingOrderDetector.Instance.Get(blocks).ToList();
                pageBlocks.Add(ordered);
                pageNumbers.Add(page.Number);
            }
            var decorations = pageBlocks.Count >= 2 ? DecorationTextBlockClassifier.Get(pageBlocks) : [];
            var result = new List<TextBlock>();
            for (var p = 0; p < pageBlocks.Count; p++)
            {
                var dropped = p < decorations.Count ? decorations[p].ToHashSet() : [];
                foreach (var block in pageBlocks[p])
                {
                    if (dropped.Contains(block))
                    {
                        continue;
                    }
                    var text = Extractor.Normalize(block.Text);
                    if (text.Length > 0)
                    {
                        result.Add(new TextBlock(BlockKind.Paragraph, text, [], Page: pageNumbers[p]));
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
}
