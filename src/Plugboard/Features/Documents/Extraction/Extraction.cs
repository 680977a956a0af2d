using Plugboard.Storage;

namespace Plugboard.Features.Documents.Extraction;

public enum BlockKind
{
    Heading,
    Paragraph,
    ListItem,
    TableRow,
    Code,
    Cue,
}

/// <summary>
/// One structural piece of a document's text, in reading order: the heading path above it, and where it came from
/// (a PDF page; a transcript cue's time range and speaker).
/// </summary>
public sealed record TextBlock(BlockKind Kind, string Text, IReadOnlyList<string> HeadingPath, int? Page = null, long? StartMs = null, long? EndMs = null, string? Speaker = null);

/// <summary>A document's text as blocks, and the title the content gives itself, if any.</summary>
public sealed record ExtractedText(IReadOnlyList<TextBlock> Blocks, string? Title = null);

/// <summary>A document that can never be processed as it is, with the reason its uploader can act on (not retried).</summary>
public sealed class DocumentUnreadableException(string reason, Exception? inner = null) : Exception(reason, inner);

/// <summary>Picks the extractor for a media type decided by <see cref="MediaTypes"/>.</summary>
public static class Extractor
{
    /// <summary>The text of <paramref name="content"/> (seekable); throws <see cref="DocumentUnreadableException"/> when it has none to give.</summary>
    public static ExtractedText Extract(Stream content, string mediaType, long maxUncompressedBytes)
    {
        var extracted = mediaType switch
        {
            MediaTypes.PlainText or MediaTypes.Csv => PlainTextExtractor.Extract(ReadText(content)),
            MediaTypes.Markdown => MarkdownExtractor.Extract(ReadText(content)),
            MediaTypes.Html => HtmlExtractor.Extract(ReadText(content)),
            MediaTypes.Json => JsonExtractor.Extract(content),
            MediaTypes.WebVtt or MediaTypes.SubRip => TranscriptExtractor.Extract(ReadText(content)),
            MediaTypes.Pdf => PdfExtractor.Extract(content),
            MediaTypes.Docx => DocxExtractor.Extract(content, maxUncompressedBytes),
            _ => throw new DocumentUnreadableException($"Documents of type {mediaType} cannot be extracted."),
        };
        if (extracted.Blocks.Count == 0)
        {
            throw new DocumentUnreadableException(mediaType == MediaTypes.Pdf
                ? "The PDF has no text layer (it may be a scanned image); run it through OCR and upload the result."
                : "The document contains no text.");
        }
        return extracted;
    }

    private static string ReadText(Stream content)
    {
        using var reader = new StreamReader(content, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true, leaveOpen: true);
        return reader.ReadToEnd();
    }

    /// <summary>Collapses runs of whitespace to one space and trims: how every extractor hands text over.</summary>
    public static string Normalize(string text)
    {
        var builder = new System.Text.StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                space = builder.Length > 0;
                continue;
            }
            if (space)
            {
                builder.Append(' ');
                space = false;
            }
            builder.Append(c);
        }
        return builder.ToString();
    }
}
