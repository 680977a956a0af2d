using System.Diagnostics;
using System.Text;
using Plugboard.Features.Documents;
using Plugboard.Features.Documents.Extraction;

namespace Plugboard.Bench;

/// <summary>
/// Extraction-free chunking: a large Markdown corpus and a large WebVTT transcript corpus are extracted once (not
/// timed), then chunked with the default budget (512 tokens, 64 overlap) — against the o200k_base tokenizer alone
/// counting the tokens of the same text, in the same run. Prints both MB/s and last <c>ratio: chunker / tokenizer</c>.
/// </summary>
public static class ChunkingBenchmark
{
    public static Task<int> RunAsync(string[] args)
    {
        var megabytes = BenchTools.Arg(args, "--mb", 16);
        var rounds = BenchTools.Arg(args, "--rounds", 5);
        var random = new Random(42);
        var vocabulary = Corpus.Vocabulary(random, 5000);
        var markdown = Corpus.Markdown(random, vocabulary, megabytes / 2 * 1024 * 1024);
        var transcript = Corpus.Transcript(random, vocabulary, megabytes / 2 * 1024 * 1024);
        var extracted = new[] { MarkdownExtractor.Extract(markdown), TranscriptExtractor.Extract(transcript) };
        var texts = extracted.Select(Chunker.FullText).ToArray();
        var bytes = texts.Sum(t => (long)Encoding.UTF8.GetByteCount(t));
        var chunker = new Chunker(new ChunkingOptions());
        Console.WriteLine($"corpus: {bytes / 1024.0 / 1024:F1} MB of extracted text ({extracted.Sum(e => e.Blocks.Count)} blocks: Markdown and WebVTT)");

        // Warm-up, then alternate the two so neither gets a cooler machine.
        var chunks = extracted.Sum(e => chunker.Split(e).Count);
        _ = texts.Sum(t => Chunker.Tokenizer.CountTokens(t));
        var blockSeconds = new List<double>();
        var chunkerSeconds = new List<double>();
        var tokenizerSeconds = new List<double>();
        long tokens = 0;
        for (var round = 0; round < rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            foreach (var text in extracted)
            {
                chunks = chunker.Split(text).Count;
            }
            chunkerSeconds.Add(watch.Elapsed.TotalSeconds);
            watch.Restart();
            tokens = 0;
            foreach (var text in texts)
            {
                tokens += Chunker.Tokenizer.CountTokens(text);
            }
            tokenizerSeconds.Add(watch.Elapsed.TotalSeconds);
            watch.Restart();
            foreach (var block in extracted.SelectMany(e => e.Blocks))
            {
                _ = Chunker.Tokenizer.CountTokens(block.Text);
            }
            blockSeconds.Add(watch.Elapsed.TotalSeconds);
        }
        blockSeconds.Sort();
        chunkerSeconds.Sort();
        tokenizerSeconds.Sort();
        var megabytesTotal = bytes / 1024.0 / 1024;
        var chunkerRate = megabytesTotal / chunkerSeconds[rounds / 2];
        var tokenizerRate = megabytesTotal / tokenizerSeconds[rounds / 2];
        Console.WriteLine($"{tokens} tokens; the last round made {chunks} chunks from the transcript (median of {rounds} rounds each)");
        Console.WriteLine($"tokenizer block by block (what the chunker spends most of its time on): {megabytesTotal / blockSeconds[rounds / 2]:F2} MB/s");
        Console.WriteLine($"tokenizer_mb_per_s: {tokenizerRate:F2}");
        Console.WriteLine($"chunker_mb_per_s: {chunkerRate:F2}");
        Console.WriteLine($"ratio: {chunkerRate / tokenizerRate:F3}");
        return Task.FromResult(0);
    }
}

/// <summary>Generated text for the benchmarks: words of a Zipf-like vocabulary, Markdown with sections and lists, and transcripts.</summary>
public static class Corpus
{
    private const string Letters = "etaoinshrdlcumwfgypbvkjxqz";

    public static string[] Vocabulary(Random random, int size) =>
        Enumerable.Range(0, size).Select(_ => new string(Enumerable.Range(0, random.Next(2, 11)).Select(_ => Letters[(int)(Math.Pow(random.NextDouble(), 1.6) * Letters.Length)]).ToArray()))
            .Distinct().ToArray();

    /// <summary>A word drawn with a Zipf-like skew: a few words are very common, most are rare.</summary>
    public static string Word(Random random, string[] vocabulary) => vocabulary[(int)(Math.Pow(random.NextDouble(), 3) * vocabulary.Length)];

    public static string Sentence(Random random, string[] vocabulary, int words)
    {
        var sentence = new StringBuilder();
        for (var i = 0; i < words; i++)
        {
            sentence.Append(i == 0 ? "" : " ").Append(Word(random, vocabulary));
        }
        return sentence.Append('.').ToString();
    }

    public static string Markdown(Random random, string[] vocabulary, int bytes)
    {
        var text = new StringBuilder(bytes + 4096);
        for (var section = 0; text.Length < bytes; section++)
        {
            text.Append("# ").Append(Sentence(random, vocabulary, 4)).Append("\n\n");
            for (var sub = 0; sub < 4; sub++)
            {
                text.Append("## ").Append(Sentence(random, vocabulary, 3)).Append("\n\n");
                for (var p = random.Next(2, 9); p > 0; p--)
                {
                    for (var s = random.Next(2, 8); s > 0; s--)
                    {
                        text.Append(Sentence(random, vocabulary, random.Next(6, 25))).Append(' ');
                    }
                    text.Append("\n\n");
                }
                for (var item = random.Next(0, 5); item > 0; item--)
                {
                    text.Append("- ").Append(Sentence(random, vocabulary, random.Next(4, 12))).Append('\n');
                }
                text.Append('\n');
            }
        }
        return text.ToString();
    }

    public static string Transcript(Random random, string[] vocabulary, int bytes)
    {
        string[] speakers = ["Ada Lovelace", "Charles Babbage", "Grace Hopper", "Alan Turing"];
        var text = new StringBuilder(bytes + 4096).Append("WEBVTT\n\n");
        var at = TimeSpan.Zero;
        for (var cue = 1; text.Length < bytes; cue++)
        {
            var length = TimeSpan.FromMilliseconds(random.Next(1500, 7000));
            text.Append(cue).Append('\n').Append($"{at:hh\\:mm\\:ss\\.fff} --> {at + length:hh\\:mm\\:ss\\.fff}\n")
                .Append("<v ").Append(speakers[random.Next(0, 10) < 7 ? cue / 5 % speakers.Length : random.Next(speakers.Length)]).Append('>')
                .Append(Sentence(random, vocabulary, random.Next(4, 20))).Append("</v>\n\n");
            at += length;
        }
        return text.ToString();
    }
}
