using System.Globalization;
using System.Text.RegularExpressions;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// WebVTT and SubRip transcripts, as Zoom and Teams write them: each cue keeps its time range and its speaker —
/// Teams marks speakers with a <c>&lt;v Name&gt;</c> voice span, Zoom starts the text with <c>Name:</c>. Other cue
/// markup (classes, bold, karaoke timestamps) is removed; NOTE, STYLE and REGION blocks are skipped. The first cue of
/// each speaker turn starts with "Name: ".
/// </summary>
public static partial class TranscriptExtractor
{
    public static ExtractedText Extract(string text)
    {
        var blocks = new List<TextBlock>();
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var timing = Timing().Match(lines[i]);
            if (!timing.Success)
            {
                continue;
            }
            var start = Milliseconds(timing.Groups["start"].Value);
            var end = Milliseconds(timing.Groups["end"].Value);
            var cue = new List<string>();
            for (i++; i < lines.Length && lines[i].Trim().Length > 0; i++)
            {
                cue.Add(lines[i]);
            }
            var (speaker, spoken) = SpeakerAndText(string.Join(" ", cue));
            if (spoken.Length > 0)
            {
                // A turn's first cue names its speaker in the text too, so the speaker is searchable and shows in snippets.
                var turnStarts = speaker is not null && (blocks.Count == 0 || blocks[^1].Speaker != speaker);
                blocks.Add(new TextBlock(BlockKind.Cue, turnStarts ? $"{speaker}: {spoken}" : spoken, [], StartMs: start, EndMs: Math.Max(start, end), Speaker: speaker));
            }
        }
        return new ExtractedText(blocks);
    }

    private static (string? Speaker, string Text) SpeakerAndText(string raw)
    {
        string? speaker = null;
        var voice = Voice().Match(raw);
        if (voice.Success)
        {
            speaker = Extractor.Normalize(voice.Groups["name"].Value);
        }
        var text = Extractor.Normalize(System.Net.WebUtility.HtmlDecode(Tag().Replace(raw, " ")));
        if (speaker is null)
        {
            var named = NamePrefix().Match(text);
            if (named.Success)
            {
                speaker = named.Groups["name"].Value.Trim();
                text = text[named.Length..].Trim();
            }
        }
        return (speaker is { Length: > 0 } ? speaker : null, text);
    }

    /// <summary>hh:mm:ss.mmm or mm:ss.mmm (WebVTT) or hh:mm:ss,mmm (SubRip).</summary>
    private static long Milliseconds(string stamp)
    {
        var parts = stamp.Replace(',', '.').Split(':');
        var seconds = double.Parse(parts[^1], CultureInfo.InvariantCulture);
        var minutes = long.Parse(parts[^2], CultureInfo.InvariantCulture);
        var hours = parts.Length == 3 ? long.Parse(parts[0], CultureInfo.InvariantCulture) : 0;
        return (hours * 3600 + minutes * 60) * 1000 + (long)Math.Round(seconds * 1000);
    }

    [GeneratedRegex(@"^\s*(?<start>(\d{1,3}:)?\d{2}:\d{2}[.,]\d{1,3})\s*-->\s*(?<end>(\d{1,3}:)?\d{2}:\d{2}[.,]\d{1,3})")]
    private static partial Regex Timing();

    [GeneratedRegex(@"<v(\.[^ >]*)?\s+(?<name>[^>]+)>")]
    private static partial Regex Voice();

    [GeneratedRegex(@"<[^>]*>")]
    private static partial Regex Tag();

    // "Name:" at the start of a cue, as Zoom writes it: a short name of letters, spaces, dots, apostrophes, hyphens.
    [GeneratedRegex(@"^(?<name>[\p{L}][\p{L}\p{M} .'’\-]{0,60}?):\s")]
    private static partial Regex NamePrefix();
}
