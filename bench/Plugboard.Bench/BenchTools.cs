namespace Plugboard.Bench;

/// <summary>What every benchmark needs: integer flags and percentiles of sorted samples.</summary>
public static class BenchTools
{
    public static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
    }

    public static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];

    /// <summary>Runs every item from <paramref name="concurrency"/> clients; each run returns the milliseconds it measured. Sorted.</summary>
    public static async Task<List<double>> MeasureAsync<T>(IReadOnlyList<T> work, int concurrency, Func<T, Task<double>> run)
    {
        var times = new List<double>(work.Count);
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < work.Count; i = Interlocked.Increment(ref next))
            {
                var ms = await run(work[i]);
                lock (times)
                {
                    times.Add(ms);
                }
            }
        }));
        times.Sort();
        return times;
    }
}
