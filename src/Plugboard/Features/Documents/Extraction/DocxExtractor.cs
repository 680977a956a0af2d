using System.IO.Compression;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// DOCX through the Open XML SDK: paragraphs styled as headings (Title, Heading1–9, or an outline level) build the
/// heading path, numbered or bulleted paragraphs become list items, and each table row one block of its cells. The
/// archive's declared uncompressed size of its XML parts is checked first, so a zip bomb is refused before it is inflated.
/// </summary>
public static class DocxExtractor
{
    public static ExtractedText Extract(Stream content, long maxUncompressedBytes)
    {
        CheckInflatedSize(content, maxUncompressedBytes);
        try
        {
            using var document = WordprocessingDocument.Open(content, isEditable: false);
            var body = document.MainDocumentPart?.Document?.Body
                ?? throw new DocumentUnreadableException("The DOCX has no document body; it is corrupt.");
            var styles = document.MainDocumentPart!.StyleDefinitionsPart?.Styles;
            var headings = new List<(int Level, string Text)>();
            var blocks = new List<TextBlock>();
            string? title = document.PackageProperties.Title is { Length: > 0 } t ? t : null;
            foreach (var element in body.ChildElements)
            {
                if (element is Paragraph paragraph)
                {
                    var text = Extractor.Normalize(paragraph.InnerText);
                    if (text.Length == 0)
                    {
                        continue;
                    }
                    var level = HeadingLevel(paragraph, styles);
                    if (level is { } headingLevel)
                    {
                        headings.RemoveAll(h => h.Level >= headingLevel);
                        blocks.Add(new TextBlock(BlockKind.Heading, text, headings.Select(h => h.Text).ToArray()));
                        headings.Add((headingLevel, text));
                        title ??= text;
                        continue;
                    }
                    var kind = paragraph.ParagraphProperties?.NumberingProperties is not null ? BlockKind.ListItem : BlockKind.Paragraph;
                    blocks.Add(new TextBlock(kind, text, headings.Select(h => h.Text).ToArray()));
                }
                else if (element is Table table)
                {
                    foreach (var row in table.Elements<TableRow>())
                    {
                        var cells = row.Elements<TableCell>().Select(c => Extractor.Normalize(c.InnerText)).ToList();
                        if (cells.Any(c => c.Length > 0))
                        {
                            blocks.Add(new TextBlock(BlockKind.TableRow, string.Join(" | ", cells), headings.Select(h => h.Text).ToArray()));
                        }
                    }
                }
            }
            return new ExtractedText(blocks, title);
        }
        catch (Exception e) when (e is DocumentFormat.OpenXml.Packaging.OpenXmlPackageException or InvalidDataException
                                      or System.Xml.XmlException)
        {
            throw new DocumentUnreadableException("The DOCX is corrupt and cannot be read; save it again from the word processor and upload the new file.", e);
        }
    }

    /// <summary>0 for Title, 1–9 for Heading1–9 or an outline level; null for body text.</summary>
    private static int? HeadingLevel(Paragraph paragraph, Styles? styles)
    {
        var properties = paragraph.ParagraphProperties;
        if (properties?.OutlineLevel?.Val?.Value is { } outline && outline < 9)
        {
            return outline + 1;
        }
        var styleId = properties?.ParagraphStyleId?.Val?.Value;
        if (styleId is null)
        {
            return null;
        }
        if (styleId.Equals("Title", StringComparison.OrdinalIgnoreCase))
        {
            return 0;
        }
        if (styleId.StartsWith("Heading", StringComparison.OrdinalIgnoreCase) && int.TryParse(styleId.AsSpan(7), out var level) && level is >= 1 and <= 9)
        {
            return level;
        }
        var style = styles?.Elements<Style>().FirstOrDefault(s => s.StyleId?.Value == styleId);
        return style?.StyleParagraphProperties?.OutlineLevel?.Val?.Value is { } styleOutline && styleOutline < 9 ? styleOutline + 1 : null;
    }

    private static void CheckInflatedSize(Stream content, long maxUncompressedBytes)
    {
        try
        {
            using var zip = new ZipArchive(content, ZipArchiveMode.Read, leaveOpen: true);
            long total = 0;
            // Every entry counts, whatever it is called: the SDK finds parts through relationships, not names. Media
            // barely compress, so they stay far below 20 times the size limit.
            foreach (var entry in zip.Entries)
            {
                total += entry.Length;
                if (total > maxUncompressedBytes)
                {
                    throw new DocumentUnreadableException($"The DOCX inflates to more than {maxUncompressedBytes / 1024 / 1024} MiB; it is refused as a possible zip bomb.");
                }
            }
        }
        catch (InvalidDataException e)
        {
            throw new DocumentUnreadableException("The DOCX is corrupt and cannot be read; save it again from the word processor and upload the new file.", e);
        }
        finally
        {
            content.Position = 0;
        }
    }
}
