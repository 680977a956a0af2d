using Microsoft.AspNetCore.Builder;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Plugboard.Engine.Running;

namespace Plugboard.Bench;

/// <summary>
/// Connector engine overhead: a 3-step chained manifest (each step templated from the previous step's JSONPath
/// extraction) run through <see cref="ConnectorRunner"/> against a local stub, versus the same three requests made
/// with a plain HttpClient and System.Text.Json, at the same concurrency in the same process. No database needed.
/// </summary>
public static class EngineBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var runs = BenchTools.Arg(args, "--runs", 5000);
        var concurrency = BenchTools.Arg(args, "--concurrency", 8);
        var rounds = BenchTools.Arg(args, "--rounds", 5);

        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/users", () => Results.Json(new { data = new[] { new { id = "u-1", name = "Ada" } }, total = 1 }));
            app.MapGet("/users/{id}/orders", (string id) => Results.Json(new { orders = new[] { new { id = $"{id}-o-7", amount = 42 } } }));
            app.MapGet("/orders/{id}", (string id) => Results.Json(new { id, status = "shipped", amount = 42 }));
        }, record: false);
        var baseUrl = stub.Url;

        var parsed = ManifestParser.Parse($$$"""
            version: 1
            base_url: "{{{baseUrl}}}"
            auth: { type: api_key, in: header, name: X-API-Key, value: "{{ credentials.api_key }}" }
            steps:
              - id: users
                request: { method: GET, path: /users, query: { limit: "10" } }
                extract: { id: "$.data[0].id" }
              - id: orders
                request: { method: GET, path: "/users/{{ steps.users.id }}/orders" }
                extract: { id: "$.orders[0].id" }
              - id: order
                request: { method: GET, path: "/orders/{{ steps.orders.id }}" }
                extract: { status: "$.status", amount: "$.amount" }
            output:
              status: "{{ steps.order.status }}"
              amount: "{{ steps.order.amount }}"
            """);
        if (parsed.Manifest is null)
        {
            Console.Error.WriteLine(string.Join("\n", parsed.Issues.Select(i => $"{i.Pointer}: {i.Message}")));
            return 1;
        }
        var manifest = parsed.Manifest;
        using var engineClient = new HttpMessageInvoker(SsrfGuard.CreateHandler(SsrfOptions.FromList("127.0.0.1/32")));
        var runner = new ConnectorRunner(engineClient, new RunnerOptions());
        var credentials = new Dictionary<string, string> { ["api_key"] = "bench-key-123456" };
        using var rawClient = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(2) });
        rawClient.DefaultRequestHeaders.Add("X-API-Key", "bench-key-123456");

        async Task Engine()
        {
            var result = await runner.RunAsync(manifest, new RunRequest([], [], credentials), null, CancellationToken.None);
            if (result.Status != RunStatus.Succeeded || (string?)result.Output?["status"] != "shipped")
            {
                throw new InvalidOperationException($"engine run failed: {result.Status} {result.Error}");
            }
        }

        async Task Raw()
        {
            using var users = JsonDocument.Parse(await rawClient.GetStringAsync($"{baseUrl}/users?limit=10"));
            var userId = users.RootElement.GetProperty("data")[0].GetProperty("id").GetString();
            using var orders = JsonDocument.Parse(await rawClient.GetStringAsync($"{baseUrl}/users/{Uri.EscapeDataString(userId!)}/orders"));
            var orderId = orders.RootElement.GetProperty("orders")[0].GetProperty("id").GetString();
            using var order = JsonDocument.Parse(await rawClient.GetStringAsync($"{baseUrl}/orders/{Uri.EscapeDataString(orderId!)}"));
            if (order.RootElement.GetProperty("status").GetString() != "shipped")
            {
                throw new InvalidOperationException("raw run failed");
            }
        }

        // Warm up both paths until the JIT has settled (tiered compilation promotes the engine's many methods over
        // several seconds), then alternate measured rounds of equal duration.
        var warmup = TimeSpan.FromSeconds(BenchTools.Arg(args, "--warmup-seconds", 10));
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < warmup)
        {
            await Measure(Engine, 1000, concurrency);
            await Measure(Raw, 1000, concurrency);
        }
        // --only engine|raw runs one side for the whole time (to profile it alone).
        var only = Array.IndexOf(args, "--only") is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : null;
        if (only is not null)
        {
            var side = only == "raw" ? (Func<Task>)Raw : Engine;
            var total = 0.0;
            for (var round = 0; round < rounds; round++)
            {
                total += await Measure(side, runs, concurrency);
            }
            Console.WriteLine($"{only} alone: {total / rounds:F0} runs/s");
            return 0;
        }
        double engineTotal = 0, rawTotal = 0;
        TimeSpan engineCpu = default, rawCpu = default;
        for (var round = 0; round < rounds; round++)
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var raw = await Measure(Raw, runs, concurrency);
            var afterRaw = Process.GetCurrentProcess().TotalProcessorTime;
            var engine = await Measure(Engine, runs, concurrency);
            engineCpu += Process.GetCurrentProcess().TotalProcessorTime - afterRaw;
            rawCpu += afterRaw - cpu;
            Console.WriteLine($"round {round + 1}: engine {engine:F0} runs/s, raw {raw:F0} runs/s");
            engineTotal += engine;
            rawTotal += raw;
        }
        Console.WriteLine($"runs per round: {runs}, rounds: {rounds}, concurrency: {concurrency}, 3 requests per run, warm-up {warmup.TotalSeconds:0} s");
        // The whole process's CPU (the stub's share included, the same for both): the engine side keeps both cores busy,
        // the raw side mostly waits on round trips.
        Console.WriteLine($"cpu per run: engine {engineCpu.TotalMicroseconds / (runs * rounds):F0} µs, raw {rawCpu.TotalMicroseconds / (runs * rounds):F0} µs");
        Console.WriteLine($"allocated per run (the stub's share included): engine {await AllocatedPerRun(Engine, concurrency):N0} bytes, raw {await AllocatedPerRun(Raw, concurrency):N0} bytes");
        Console.WriteLine($"engine (ConnectorRunner, SSRF guard): {engineTotal / rounds:F0} runs/s");
        Console.WriteLine($"raw (HttpClient + System.Text.Json): {rawTotal / rounds:F0} runs/s");
        Console.WriteLine($"ratio: {engineTotal / rawTotal:F2}");
        return 0;
    }

    private static async Task<long> AllocatedPerRun(Func<Task> run, int concurrency)
    {
        const int runs = 2000;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        await Measure(run, runs, concurrency);
        return (GC.GetTotalAllocatedBytes(precise: true) - before) / runs;
    }

    private static async Task<double> Measure(Func<Task> run, int runs, int concurrency)
    {
        var next = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= runs)
            {
                await run();
            }
        }));
        return runs / watch.Elapsed.TotalSeconds;
    }

}
