using System.Text;
using Microsoft.Extensions.Configuration;
using Plugboard.Features.Documents;
using Plugboard.Features.Documents.Extraction;
using TextBlock = Plugboard.Features.Documents.Extraction.TextBlock;

namespace Plugboard.Tests;

/// <summary>Chunks follow structure, stay within the token budget as the real tokenizer counts it, and say where they came from.</summary>
public sealed class ChunkerTests
{
    private static readonly string[] Words = ["harbour", "lantern", "keeper", "signal", "tide", "beacon", "reef", "vessel", "storm", "chart", "quay", "mast"];

    private static string Sentence(Random random, int words) =>
        string.Join(' ', Enumerable.Range(0, words).Select(_ => Words[random.Next(Words.Length)])) + ".";

    private static void AssertWellFormed(ExtractedText text, IReadOnlyList<Chunk> chunks, ChunkingOptions options)
    {
        var full = Chunker.FullText(text);
        Assert.NotEmpty(chunks);
        for (var i = 0; i < chunks.Count; i++)
        {
            var chunk = chunks[i];
            Assert.Equal(i, chunk.Ordinal);
            Assert.Equal(full[chunk.CharStart..chunk.CharEnd], chunk.Content);
            var real = Chunker.Tokenizer.CountTokens(chunk.Content);
            Assert.True(real <= options.MaxTokens, $"chunk {i} has {real} tokens (budget {options.MaxTokens})");
            // The count is the sum of the blocks' counts (each block is tokenized once): never below the truth, and close to it.
            Assert.True(real <= chunk.TokenCount && chunk.TokenCount <= real + Math.Max(4, real / 8), $"chunk {i}: counted {chunk.TokenCount}, really {real}");
        }
        // Nothing of the text is lost: every character lies in some chunk (separators between chunks aside).
        var covered = new bool[full.Length];
        foreach (var chunk in chunks)
        {
            Array.Fill(covered, true, chunk.CharStart, chunk.CharEnd - chunk.CharStart);
        }
        for (var c = 0; c < full.Length; c++)
        {
            Assert.True(covered[c] || char.IsWhiteSpace(full[c]), $"character {c} ('{full[c]}') is in no chunk");
        }
    }

    [Fact]
    public void Markdown_chunks_never_cross_a_heading_and_fit_the_budget()
    {
        var random = new Random(7);
        var markdown = new StringBuilder();
        for (var section = 0; section < 12; section++)
        {
            markdown.Append($"# Part {section}\n\n");
            for (var sub = 0; sub < 3; sub++)
            {
                markdown.Append($"## Topic {section}.{sub}\n\n");
                for (var p = 0; p < random.Next(1, 8); p++)
                {
                    markdown.Append(Sentence(random, random.Next(5, 90))).Append("\n\n");
                }
                markdown.Append("- ").Append(Sentence(random, 6)).Append("\n- ").Append(Sentence(random, 9)).Append("\n\n");
            }
        }
        var text = MarkdownExtractor.Extract(markdown.ToString());
        var options = new ChunkingOptions(MaxTokens: 96, OverlapTokens: 16);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        foreach (var chunk in chunks)
        {
            // A chunk holds one section: no heading appears inside it other than at its start.
            var headings = text.Blocks.Where(b => b.Kind == BlockKind.Heading).Select(b => b.Text);
            Assert.DoesNotContain(headings, h => chunk.Content.IndexOf("\n\n" + h + "\n\n", StringComparison.Ordinal) > 0);
            Assert.NotEmpty(chunk.HeadingPath);
        }
        Assert.Contains(chunks, c => c.HeadingPath.SequenceEqual(["Part 3", "Topic 3.1"]));
    }

    [Fact]
    public void An_oversized_paragraph_is_cut_into_overlapping_windows_at_word_boundaries()
    {
        var random = new Random(11);
        var text = new ExtractedText([new TextBlock(BlockKind.Paragraph, Sentence(random, 3000), ["Long"])]);
        var options = new ChunkingOptions(MaxTokens: 128, OverlapTokens: 24);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        Assert.True(chunks.Count >= 20, $"3000 words in 128-token windows make many chunks, not {chunks.Count}");
        for (var i = 1; i < chunks.Count; i++)
        {
            Assert.True(chunks[i].CharStart < chunks[i - 1].CharEnd, $"window {i} overlaps the one before");
            var overlap = text.Blocks[0].Text[chunks[i].CharStart..chunks[i - 1].CharEnd];
            Assert.InRange(Chunker.Tokenizer.CountTokens(overlap), 1, options.OverlapTokens + 1);
            Assert.NotEqual(' ', chunks[i].Content[0]);
            Assert.True(chunks[i - 1].CharEnd == text.Blocks[0].Text.Length || text.Blocks[0].Text[chunks[i - 1].CharEnd] == ' ', "windows end at a word boundary");
        }
    }

    [Fact]
    public void Packed_sections_carry_the_configured_overlap_into_the_next_chunk()
    {
        var random = new Random(3);
        var blocks = Enumerable.Range(0, 40).Select(_ => new TextBlock(BlockKind.Paragraph, Sentence(random, 20), ["Same section"])).ToList();
        var text = new ExtractedText(blocks);
        var options = new ChunkingOptions(MaxTokens: 100, OverlapTokens: 10);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        Assert.True(chunks.Count > 5);
        Assert.All(chunks.Skip(1), c => Assert.True(c.CharStart < chunks[c.Ordinal - 1].CharEnd, $"chunk {c.Ordinal} starts with the end of the one before"));
        var none = new Chunker(options with { OverlapTokens = 0 }).Split(text);
        Assert.All(none.Skip(1), c => Assert.True(c.CharStart >= none[c.Ordinal - 1].CharEnd));
    }

    [Fact]
    public void Transcript_chunks_keep_speaker_turns_whole_and_their_time_ranges()
    {
        var random = new Random(5);
        var cues = new List<TextBlock>();
        long at = 0;
        foreach (var (speaker, count) in new[] { ("Ada", 4), ("Charles", 3), ("Ada", 2), ("Grace", 5) })
        {
            for (var i = 0; i < count; i++, at += 2000)
            {
                cues.Add(new TextBlock(BlockKind.Cue, Sentence(random, 8), [], StartMs: at, EndMs: at + 1900, Speaker: speaker));
            }
        }
        var text = new ExtractedText(cues);
        var options = new ChunkingOptions(MaxTokens: 60, OverlapTokens: 8);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        // Each turn here fits the budget, so each lies whole in one chunk; short turns may share one (then no single speaker is named).
        var starts = new List<int>();
        for (int i = 0, offset = 0; i < cues.Count; offset += cues[i].Text.Length + 2, i++)
        {
            starts.Add(offset);
        }
        for (var first = 0; first < cues.Count;)
        {
            var last = first;
            while (last + 1 < cues.Count && cues[last + 1].Speaker == cues[first].Speaker)
            {
                last++;
            }
            var (from, to) = (starts[first], starts[last] + cues[last].Text.Length);
            Assert.Single(chunks, c => c.CharStart <= from && to <= c.CharEnd);
            first = last + 1;
        }
        Assert.Equal("Ada", chunks[0].Speaker);
        Assert.Contains(chunks, c => c.Speaker is null && c.Content.Split("\n\n").Length > 1);
        Assert.Equal((0L, 7900L), (chunks[0].StartMs!.Value, chunks[0].EndMs!.Value));
        Assert.Equal(cues[^1].EndMs, chunks[^1].EndMs);
    }

    [Fact]
    public void Text_without_spaces_is_chunked_within_the_budget()
    {
        var text = Extractor.Extract(new MemoryStream(Encoding.UTF8.GetBytes(new string('z', 40_000) + "\n" + string.Concat(Enumerable.Range(0, 4000).Select(i => $"{i:x},")))),
            Plugboard.Storage.MediaTypes.PlainText, 1 << 20);
        var options = new ChunkingOptions(MaxTokens: 64, OverlapTokens: 32);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        // Each window moves on by at least half of itself: about two chunks per budget of tokens, not one per word.
        var tokens = Chunker.Tokenizer.CountTokens(Chunker.FullText(text));
        Assert.True(chunks.Count <= tokens * 2 / options.MaxTokens * 1.25 + 5, $"{chunks.Count} chunks for {tokens} tokens");
    }

    [Fact]
    public void Pdf_chunks_carry_their_page_range()
    {
        var random = new Random(9);
        var blocks = Enumerable.Range(1, 6).SelectMany(page => Enumerable.Range(0, 3).Select(_ => new TextBlock(BlockKind.Paragraph, Sentence(random, 30), [], Page: page))).ToList();
        var text = new ExtractedText(blocks);
        var options = new ChunkingOptions(MaxTokens: 80, OverlapTokens: 0);
        var chunks = new Chunker(options).Split(text);
        AssertWellFormed(text, chunks, options);
        Assert.Equal(1, chunks[0].PageStart);
        Assert.Equal(6, chunks[^1].PageEnd);
        Assert.All(chunks, c => Assert.True(c.PageStart <= c.PageEnd));
    }

    [Fact]
    public void The_default_budget_is_512_tokens_with_64_overlap_and_settings_are_checked()
    {
        var defaults = ChunkingOptions.FromConfiguration(new ConfigurationBuilder().Build());
        Assert.Equal(new ChunkingOptions(512, 64), defaults);
        var custom = ChunkingOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PLUGBOARD_CHUNK_TOKENS"] = "256",
            ["PLUGBOARD_CHUNK_OVERLAP"] = "32",
        }).Build());
        Assert.Equal(new ChunkingOptions(256, 32), custom);
        var bad = Assert.Throws<Plugboard.Hosting.InvalidSettingException>(() => ChunkingOptions.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["PLUGBOARD_CHUNK_TOKENS"] = "lots" }).Build()));
        Assert.Contains("PLUGBOARD_CHUNK_TOKENS", bad.Message, StringComparison.Ordinal);
    }
}
