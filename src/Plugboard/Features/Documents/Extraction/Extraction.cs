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
    /// <summary>Most characters of text a document may yield; more is refused, so one file cannot exhaust a worker.</summary>
    public const int MaxTextCharacters = 64 * 1024 * 1024;

    /// <summary>Headings (and so heading paths) are cut to this many characters.</summary>
    public const int MaxHeadingCharacters = 200;

    /// <summary>Runs of non-space characters are broken with a space after this many (a tokenizer's work grows with the square of a run).</summary>
    public const int MaxRunCharacters = 128;

    public static ExtractedText Extract(Stream content, string mediaType, long maxUncompressedBytes)
    {
        ExtractedText extracted;
        try
        {
            extracted = Parse(content, mediaType, maxUncompressedBytes);
        }
        catch (InsufficientExecutionStackException e)
        {
            throw new DocumentUnreadableException("The document is nested too deeply to be read.", e);
        }
        var total = 0L;
        var blocks = new List<TextBlock>(extracted.Blocks.Count);
        foreach (var block in extracted.Blocks)
        {
            total += block.Text.Length;
            if (total > MaxTextCharacters)
            {
                throw new DocumentUnreadableException($"The document holds more than {MaxTextCharacters / 1024 / 1024} MiB of text; split it into smaller files.");
            }
            var text = BreakLongRuns(block.Kind == BlockKind.Heading ? Cut(block.Text) : block.Text);
            var path = block.HeadingPath.Any(h => h.Length > MaxHeadingCharacters) ? block.HeadingPath.Select(Cut).ToArray() : block.HeadingPath;
            blocks.Add(ReferenceEquals(text, block.Text) && ReferenceEquals(path, block.HeadingPath) ? block : block with { Text = text, HeadingPath = path });
        }
        if (blocks.Count == 0)
        {
            throw new DocumentUnreadableException(mediaType == MediaTypes.Pdf
                ? "The PDF has no text layer (it may be a scanned image); run it through OCR and upload the result."
                : "The document contains no text.");
        }
        return new ExtractedText(blocks, extracted.Title is { } title ? Cut(title) : null);
    }

    private static string Cut(string text) => text.Length <= MaxHeadingCharacters ? text : text[..MaxHeadingCharacters];

    /// <summary>Inserts a space into every run of more than <see cref="MaxRunCharacters"/> non-space characters (base64, hex dumps, minified code).</summary>
    public static string BreakLongRuns(string text)
    {
        var run = 0;
        var longest = 0;
        foreach (var c in text)
        {
            run = char.IsWhiteSpace(c) ? 0 : run + 1;
            longest = Math.Max(longest, run);
        }
        if (longest <= MaxRunCharacters)
        {
            return text;
        }
        var broken = new System.Text.StringBuilder(text.Length + text.Length / MaxRunCharacters);
        run = 0;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                run = 0;
            }
            else if (++run > MaxRunCharacters)
            {
                broken.Append(' ');
                run = 1;
            }
            broken.Append(c);
        }
        return broken.ToString();
    }

    private static ExtractedText Parse(Stream content, string mediaType, long maxUncompressedBytes)
    {
        return mediaType switch
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
    }

    private static string ReadText(Stream content)
    {
        if (content.CanSeek && content.Length > MaxTextCharacters * 4L)
        {
            throw new DocumentUnreadableException($"The document holds more than {MaxTextCharacters / 1024 / 1024} MiB of text; split it into smaller files.");
        }
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
