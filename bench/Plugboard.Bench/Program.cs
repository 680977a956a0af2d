using Plugboard.Bench;

var benchmarks = new Dictionary<string, Func<string[], Task<int>>>(StringComparer.Ordinal)
{
    ["rls"] = RlsBenchmark.RunAsync,
    ["dispatch"] = DispatchBenchmark.RunAsync,
    ["engine"] = EngineBenchmark.RunAsync,
    ["queue"] = QueueBenchmark.RunAsync,
    ["e2e"] = E2eBenchmark.RunAsync,
    ["chunking"] = ChunkingBenchmark.RunAsync,
    ["search"] = SearchBenchmark.RunAsync,
    ["upload"] = UploadBenchmark.RunAsync,
    ["import"] = ImportBenchmark.RunAsync,
    ["webhooks"] = WebhooksBenchmark.RunAsync,
    ["dashboard"] = DashboardBenchmark.RunAsync,
};
if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.WriteLine("Benchmarks (run one with bench/run NAME):");
    foreach (var name in benchmarks.Keys)
    {
        Console.WriteLine($"  {name}");
    }
    return args.Length == 0 ? 0 : 2;
}
return await run(args[1..]);
