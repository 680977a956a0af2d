using Microsoft.ML.Tokenizers;
using Plugboard.Features.Documents.Extraction;
using Plugboard.Hosting;
using TextBlock = Plugboard.Features.Documents.Extraction.TextBlock;

namespace Plugboard.Features.Documents;

/// <summary>How large chunks are, in tokens of the o200k_base encoding (PLUGBOARD_CHUNK_TOKENS, PLUGBOARD_CHUNK_OVERLAP).</summary>
public sealed record ChunkingOptions(int MaxTokens = 512, int OverlapTokens = 64)
{
    public static ChunkingOptions FromConfiguration(IConfiguration configuration)
    {
        var max = Settings.Int(configuration, "PLUGBOARD_CHUNK_TOKENS", 512, 32, 8192);
        return new ChunkingOptions(max, Settings.Int(configuration, "PLUGBOARD_CHUNK_OVERLAP", Math.Min(64, max / 4), 0, max / 2));
    }
}

/// <summary>One searchable piece of a document: text that is exactly <c>FullText[CharStart..CharEnd]</c> of its extraction.</summary>
public sealed record Chunk(int Ordinal, string Content, IReadOnlyList<string> HeadingPath, int CharStart, int CharEnd,
    int? PageStart, int? PageEnd, long? StartMs, long? EndMs, string? Speaker, int TokenCount);

/// <summary>
/// Splits extracted text along its structure, bounded by a token count measured with the o200k_base tokenizer. A heading
/// starts a new chunk; blocks of one section are packed up to the budget; transcript cues are packed by speaker turn
/// (a turn that fits in a chunk is never split across two); a block larger than the budget is cut into windows at
/// word boundaries. A chunk closed because the budget ran out (not at a heading or a turn) starts the next one with
/// the last overlap tokens of its text. Each block is tokenized once; a chunk's count is the sum of its parts.
/// </summary>
public sealed class Chunker(ChunkingOptions options)
{
    private static readonly Lazy<Tokenizer> SharedTokenizer = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    /// <summary>The tokenizer chunks are measured with (its vocabulary is embedded in the data package; nothing is downloaded).</summary>
    public static Tokenizer Tokenizer => SharedTokenizer.Value;

    private const string Separator = "\n\n";

    private static readonly System.Buffers.SearchValues<char> WhiteSpace = System.Buffers.SearchValues.Create(" \t\n\r\f\v");

    /// <summary>The last whitespace at or before <paramref name="from"/>, looking back at most <paramref name="count"/> characters; -1 if none.</summary>
    private static int LastWhiteSpace(string text, int from, int count)
    {
        var start = Math.Max(0, from - count + 1);
        var found = text.AsSpan(start, from - start + 1).LastIndexOfAny(WhiteSpace);
        return found < 0 ? -1 : start + found;
    }

    /// <summary>More characters than any realistic run of tokens needs (o200k_base averages about four per token).</summary>
    private const int CharactersPerTokenBound = 16;
    private const int SeparatorTokens = 1;

    public ChunkingOptions Options { get; } = options;

    /// <summary>The blocks' texts joined as the chunks' character offsets count them.</summary>
    public static string FullText(ExtractedText text) => string.Join(Separator, text.Blocks.Select(b => b.Text));

    public IReadOnlyList<Chunk> Split(ExtractedText text)
    {
        var blocks = text.Blocks;
        var full = FullText(text);
        var starts = new int[blocks.Count];
        var tokens = new int[blocks.Count];
        for (int i = 0, offset = 0; i < blocks.Count; offset += blocks[i].Text.Length + Separator.Length, i++)
        {
            starts[i] = offset;
            tokens[i] = Tokenizer.CountTokens(blocks[i].Text);
        }
        var builder = new Builder(this, blocks, full, starts);
        for (var i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i];
            var previous = i > 0 ? blocks[i - 1] : null;
            var newSection = block.Kind == BlockKind.Heading || (previous is not null && !previous.HeadingPath.SequenceEqual(block.HeadingPath)
                && !(previous.Kind == BlockKind.Heading && IsUnder(block.HeadingPath, previous)));
            var newTurn = block.Kind == BlockKind.Cue && previous is { Kind: BlockKind.Cue } && previous.Speaker != block.Speaker;
            if (newSection)
            {
                builder.Close(carryOverlap: false);
                builder.DropOverlap(); // an overlap never crosses into another section
            }
            else if (newTurn && !builder.HasContent)
            {
                builder.DropOverlap();
            }
            else if (builder.HasContent && newTurn && builder.Tokens + SeparatorTokens + TurnTokens(blocks, tokens, i) > Options.MaxTokens)
            {
                builder.Close(carryOverlap: false);
            }
            else if (builder.HasContent && builder.Tokens + SeparatorTokens + tokens[i] > Options.MaxTokens)
            {
                builder.Close(carryOverlap: true);
            }
            if (builder.Tokens > 0 && builder.Tokens + SeparatorTokens + tokens[i] > Options.MaxTokens)
            {
                builder.DropOverlap(); // the carried overlap and this block do not fit together: the block wins
            }
            if (tokens[i] > Options.MaxTokens)
            {
                builder.DropOverlap();
                builder.AddWindows(i);
                continue;
            }
            builder.Add(i, tokens[i]);
        }
        builder.Close(carryOverlap: false);
        return builder.Chunks;
    }

    private static bool IsUnder(IReadOnlyList<string> path, TextBlock heading) =>
        path.Count == heading.HeadingPath.Count + 1 && path[^1] == heading.Text && path.Take(heading.HeadingPath.Count).SequenceEqual(heading.HeadingPath);

    /// <summary>The tokens of the speaker turn that starts at cue <paramref name="first"/>.</summary>
    private static int TurnTokens(IReadOnlyList<TextBlock> blocks, int[] tokens, int first)
    {
        var total = tokens[first];
        for (var i = first + 1; i < blocks.Count && blocks[i].Kind == BlockKind.Cue && blocks[i].Speaker == blocks[first].Speaker; i++)
        {
            total += SeparatorTokens + tokens[i];
        }
        return total;
    }

    /// <summary>The chunk being filled: a character range of the full text and its token count.</summary>
    private sealed class Builder(Chunker chunker, IReadOnlyList<TextBlock> blocks, string full, int[] starts)
    {
        private int _start = -1;
        private int _end;
        private int _firstBlock = -1; // the first block added (not carried over): its section names the chunk
        private bool _hasContent;

        public List<Chunk> Chunks { get; } = [];
        public int Tokens { get; private set; }
        public bool HasContent => _hasContent;

        private int Max => chunker.Options.MaxTokens;

        public void Add(int block, int tokens)
        {
            if (_start < 0)
            {
                _start = starts[block];
                Tokens = tokens;
            }
            else
            {
                Tokens += SeparatorTokens + tokens;
            }
            _end = starts[block] + blocks[block].Text.Length;
            if (_firstBlock < 0)
            {
                _firstBlock = block;
            }
            _hasContent = true;
        }

        public void DropOverlap()
        {
            if (!_hasContent)
            {
                _start = -1;
                Tokens = 0;
            }
        }

        /// <summary>Cuts an oversized block into windows of at most the budget, each overlapping the one before.</summary>
        public void AddWindows(int block)
        {
            Close(carryOverlap: false);
            var text = blocks[block].Text;
            var position = 0;
            while (position < text.Length)
            {
                // A window of text ample for the budget (tokens average about four characters): the rest is not tokenized.
                var remaining = text.AsSpan(position, Math.Min(text.Length - position, Max * CharactersPerTokenBound));
                var take = Tokenizer.GetIndexByTokenCount(remaining, Max, out _, out var count);
                var end = position + take;
                if (end < text.Length)
                {
                    var space = LastWhiteSpace(text, end - 1, Math.Max(1, take / 2));
                    if (space > position)
                    {
                        end = space;
                    }
                }
                if (end <= position)
                {
                    end = Math.Min(text.Length, position + Math.Max(1, take));
                }
                // The exact count of the window as cut; a cut that lands inside a token can cost one more, so shrink until it fits.
                count = Tokenizer.CountTokens(text.AsSpan(position, end - position));
                while (count > Max && end - position > 1)
                {
                    end = position + (end - position) * 9 / 10;
                    count = Tokenizer.CountTokens(text.AsSpan(position, end - position));
                }
                _start = starts[block] + position;
                _end = starts[block] + end;
                Tokens = count;
                _firstBlock = block;
                _hasContent = true;
                if (end >= text.Length)
                {
                    break; // the last window stays open: the blocks after it may still fit
                }
                var (overlapStart, _) = OverlapStart(position, end, text);
                Emit();
                position = Math.Max(overlapStart, position + Math.Max(1, (end - position) / 2)); // each window moves on by half of itself at least
                while (position < text.Length && char.IsWhiteSpace(text[position]))
                {
                    position++;
                }
            }
        }

        /// <summary>
        /// Where the last overlap tokens of <c>text[from..to]</c> begin (moved forward to a word start), and how many tokens
        /// they are at most. Only the tail is tokenized, not the whole chunk.
        /// </summary>
        private (int Start, int Tokens) OverlapStart(int from, int to, string text)
        {
            if (chunker.Options.OverlapTokens == 0)
            {
                return (to, 0);
            }
            // A tail of about six characters per token first (enough for ordinary text); the ample bound only when that falls short.
            var overlap = chunker.Options.OverlapTokens;
            var tail = Math.Max(from, to - overlap * 6);
            var back = Tokenizer.GetIndexByTokenCountFromEnd(text.AsSpan(tail, to - tail), overlap, out _, out var tokens);
            if (tokens < overlap && tail > from)
            {
                tail = Math.Max(from, to - overlap * CharactersPerTokenBound);
                back = Tokenizer.GetIndexByTokenCountFromEnd(text.AsSpan(tail, to - tail), overlap, out _, out tokens);
            }
            var start = tail + back;
            var space = text.AsSpan(start, to - start).IndexOfAny(WhiteSpace);
            return (space >= 0 && start + space + 1 < to ? start + space + 1 : start, tokens);
        }

        public void Close(bool carryOverlap)
        {
            if (!_hasContent)
            {
                return;
            }
            var (start, end) = (_start, _end);
            Emit();
            if (carryOverlap && chunker.Options.OverlapTokens > 0)
            {
                var (overlap, tokens) = OverlapStart(start, end, full);
                if (overlap < end)
                {
                    _start = overlap;
                    _end = end;
                    Tokens = tokens; // counted before the start moved to a word boundary: never fewer than the text holds
                }
            }
        }

        private void Emit()
        {
            var first = blocks[_firstBlock];
            var path = first.Kind == BlockKind.Heading ? [.. first.HeadingPath, first.Text] : first.HeadingPath;
            int? pageStart = null, pageEnd = null;
            long? startMs = null, endMs = null;
            string? speaker = null;
            var speakers = 0;
            var index = Array.BinarySearch(starts, _start);
            for (var i = index >= 0 ? index : ~index - 1; i < blocks.Count && i >= 0 && starts[i] < _end; i++)
            {
                var block = blocks[i];
                if (block.Page is { } page)
                {
                    pageStart = Math.Min(pageStart ?? page, page);
                    pageEnd = Math.Max(pageEnd ?? page, page);
                }
                if (block.StartMs is { } s)
                {
                    startMs = Math.Min(startMs ?? s, s);
                    endMs = Math.Max(endMs ?? block.EndMs ?? s, block.EndMs ?? s);
                }
                if (block.Speaker is { } name && name != speaker)
                {
                    speaker = name;
                    speakers++;
                }
            }
            Chunks.Add(new Chunk(Chunks.Count, full[_start.._end], path, _start, _end, pageStart, pageEnd, startMs, endMs,
                speakers == 1 ? speaker : null, Tokens));
            _start = -1;
            _firstBlock = -1;
            _hasContent = false;
            Tokens = 0;
        }
    }
}
