using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Plugboard.Storage;

/// <summary>
/// Decides a file's media type from its bytes and structure, never from its declared Content-Type or its extension:
/// a PDF starts with <c>%PDF-</c>, a DOCX is a zip whose parts say so, text is valid UTF-8 without NUL (then WebVTT,
/// SubRip, JSON or HTML by content; Markdown and CSV by extension only once the content is plain text). Executables
/// (ELF, PE, Mach-O, scripts with <c>#!</c>) are recognised as such so they can be refused whatever they are called.
/// </summary>
public static partial class MediaTypes
{
    public const string Pdf = "application/pdf";
    public const string Docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    public const string Zip = "application/zip";
    public const string PlainText = "text/plain";
    public const string Markdown = "text/markdown";
    public const string Csv = "text/csv";
    public const string Json = "application/json";
    public const string Html = "text/html";
    public const string WebVtt = "text/vtt";
    public const string SubRip = "application/x-subrip";
    public const string Executable = "application/x-executable";
    public const string Binary = "application/octet-stream";

    /// <summary>Every type the sniffer can decide.</summary>
    public static readonly IReadOnlyList<string> Known = [Pdf, Docx, Zip, PlainText, Markdown, Csv, Json, Html, WebVtt, SubRip, Executable, Binary];

    /// <summary>What the connector-imports bucket accepts unless configured otherwise.</summary>
    public static readonly IReadOnlyList<string> DefaultAllowed = [Pdf, Docx, PlainText, Markdown, Csv, Json, Html, WebVtt, SubRip];

    private const int TextSample = 64 * 1024;

    // ELF, PE ("MZ"), scripts ("#!"), and Mach-O (32/64-bit, both byte orders, fat binaries).
    private static readonly byte[][] ExecutableSignatures =
    [
        [0x7F, (byte)'E', (byte)'L', (byte)'F'], [(byte)'M', (byte)'Z'], [(byte)'#', (byte)'!'],
        [0xFE, 0xED, 0xFA, 0xCE], [0xFE, 0xED, 0xFA, 0xCF], [0xCE, 0xFA, 0xED, 0xFE], [0xCF, 0xFA, 0xED, 0xFE], [0xCA, 0xFE, 0xBA, 0xBE],
    ];

    /// <summary>The media type of <paramref name="content"/> (seekable; read from its start and left at its start).</summary>
    public static string Sniff(Stream content, string? fileName)
    {
        ArgumentNullException.ThrowIfNull(content);
        content.Position = 0;
        var head = new byte[TextSample];
        var length = content.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        content.Position = 0;
        var bytes = head.AsSpan(0, length);
        if (bytes.StartsWith("%PDF-"u8))
        {
            return Pdf;
        }
        if (IsExecutable(bytes))
        {
            return Executable;
        }
        if (bytes.StartsWith("PK\x03\x04"u8))
        {
            return IsDocx(content) ? Docx : Zip;
        }
        return IsText(bytes, complete: length < head.Length) ? Text(content, bytes, length < head.Length, fileName) : Binary;
    }

    /// <summary>Null when <paramref name="detected"/> may be stored; otherwise what to tell the uploader.</summary>
    public static string? Refusal(string detected, string? declared, IReadOnlyCollection<string> allowed)
    {
        if (detected == Executable)
        {
            return "The file is an executable program; executables are never accepted.";
        }
        if (!allowed.Contains(detected))
        {
            return $"The file's content is {detected}, which this bucket does not accept (allowed: {string.Join(", ", allowed)}).";
        }
        var declaredType = declared?.Split(';')[0].Trim().ToLowerInvariant();
        if (declaredType is { Length: > 0 } and not Binary && declaredType != detected && !Compatible(detected, declaredType))
        {
            return $"The file was declared as {declaredType}, but its content is {detected}.";
        }
        return null;
    }

    /// <summary>Declarations browsers and tools commonly make for text that the content names more precisely.</summary>
    private static bool Compatible(string detected, string declared) =>
        (IsTextType(detected) && declared == PlainText)
        || (detected == Csv && declared is "application/vnd.ms-excel" or "application/csv")
        || (detected == Markdown && declared == "text/x-markdown")
        || (detected == SubRip && declared == "text/srt")
        || (detected == Json && declared == "text/json");

    private static bool IsTextType(string type) => type is PlainText or Markdown or Csv or Json or Html or WebVtt or SubRip;

    private static bool IsExecutable(ReadOnlySpan<byte> bytes)
    {
        foreach (var signature in ExecutableSignatures)
        {
            if (bytes.StartsWith(signature))
            {
                return true;
            }
        }
        return false;
    }

    private static bool IsDocx(Stream content)
    {
        try
        {
            using var zip = new ZipArchive(content, ZipArchiveMode.Read, leaveOpen: true);
            var types = zip.GetEntry("[Content_Types].xml");
            if (types is null || zip.GetEntry("word/document.xml") is null || types.Length > 1024 * 1024)
            {
                return false;
            }
            using var reader = new StreamReader(types.Open());
            return reader.ReadToEnd().Contains("wordprocessingml.document.main+xml", StringComparison.Ordinal);
        }
        catch (InvalidDataException)
        {
            return false; // not a readable zip
        }
        finally
        {
            content.Position = 0;
        }
    }

    private static bool IsText(ReadOnlySpan<byte> bytes, bool complete)
    {
        if (bytes.Contains((byte)0))
        {
            return false;
        }
        // A multi-byte character cut by the end of the sample is not an error.
        for (var trim = 0; trim <= (complete ? 0 : 3) && trim <= bytes.Length; trim++)
        {
            if (System.Text.Unicode.Utf8.IsValid(bytes[..^trim]))
            {
                return true;
            }
        }
        return false;
    }

    private static string Text(Stream content, ReadOnlySpan<byte> sample, bool complete, string? fileName)
    {
        var text = Encoding.UTF8.GetString(sample).TrimStart('\uFEFF').TrimStart();
        if (text.StartsWith("WEBVTT", StringComparison.Ordinal))
        {
            return WebVtt;
        }
        if (SubRipStart().IsMatch(text))
        {
            return SubRip;
        }
        if ((text.StartsWith('{') || text.StartsWith('[')) && IsJson(content))
        {
            return Json;
        }
        if (HtmlStart().IsMatch(text))
        {
            return Html;
        }
        return Path.GetExtension(fileName ?? "").ToLowerInvariant() switch
        {
            ".md" or ".markdown" => Markdown,
            ".csv" => Csv,
            _ => PlainText,
        };
    }

    /// <summary>Whether the whole stream is one JSON document, checked by a streaming reader in bounded memory (no DOM).</summary>
    private static bool IsJson(Stream content)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            var state = new JsonReaderState(new JsonReaderOptions { MaxDepth = 256 });
            var kept = 0;
            long consumed = 0;
            while (true)
            {
                var read = content.Read(buffer, kept, buffer.Length - kept);
                var final = read == 0;
                var reader = new Utf8JsonReader(buffer.AsSpan(0, kept + read), final, state);
                while (reader.Read())
                {
                }
                consumed += reader.BytesConsumed;
                if (final)
                {
                    return consumed > 0;
                }
                state = reader.CurrentState;
                kept = kept + read - (int)reader.BytesConsumed;
                if (kept == buffer.Length)
                {
                    // One token longer than the buffer (a long string): grow, up to a bound.
                    if (buffer.Length >= 16 * 1024 * 1024)
                    {
                        return false;
                    }
                    var larger = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    Buffer.BlockCopy(buffer, 0, larger, 0, kept);
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                    continue;
                }
                Buffer.BlockCopy(buffer, (int)reader.BytesConsumed, buffer, 0, kept);
            }
        }
        catch (JsonException)
        {
            return false;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            content.Position = 0;
        }
    }

    [GeneratedRegex(@"^\d+\r?\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}")]
    private static partial Regex SubRipStart();

    [GeneratedRegex(@"^(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)[\s>]", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex HtmlStart();
}
