using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Bench;

/// <summary>
/// End to end through the public API: concurrent clients POST one-request executions for a while; the API, the
/// workers (in the same process, as `plugboard up` runs them), a stub on 127.0.0.1, extraction and the stored result
/// all take part. Prints executions/s from the first accepted to the last finished, the accepted→finished p99, and
/// last the ratio against a bare SKIP LOCKED drain of as many executions in the same run.
/// </summary>
public static class E2eBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var clients = BenchTools.Arg(args, "--clients", 20);
        var seconds = BenchTools.Arg(args, "--seconds", 20);
        // API, workers, stub and PostgreSQL share two cores: the JIT's background tiering gets little of them, and the
        // process keeps speeding up for about half a minute under this load.
        var warmupSeconds = BenchTools.Arg(args, "--warmup-seconds", 30);
        var settings = await BenchDatabase.CreateAsync("e2e");
        Migrator.Up(settings);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/ping", () => Results.Json(new { ok = true, id = 7 })), record: false);
        var home = Directory.CreateTempSubdirectory("plugboard-bench-e2e");
        var app = BenchHost.Build(settings, home.FullName, HostMode.All, new Dictionary<string, string?>
        {
            ["PLUGBOARD_OUTBOUND_ALLOW"] = "127.0.0.1/32",
            ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000000",
        });
        await app.StartAsync();
        await using var db = new Db(settings);
        var owner = await Bootstrap.EnsureOwnerAsync(db, home.FullName, "owner@e2e.bench", CancellationToken.None);
        var url = BenchHost.Address(app);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients * 2 }) { BaseAddress = url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
        var created = await http.PostAsJsonAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors", new
        {
            name = "e2e",
            max_concurrency = 100,
            manifest = new
            {
                version = 1,
                base_url = stub.Url,
                steps = new[] { new { id = "ping", request = new { method = "GET", path = "/ping" }, extract = new { id = "$.id" } } },
                output = new { id = "{{ steps.ping.id }}" },
            },
        });
        created.EnsureSuccessStatusCode();
        var connectorId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var path = $"/v1/workspaces/{owner.WorkspaceId}/connectors/{connectorId}/executions";

        async Task<int> DriveAsync(TimeSpan duration)
        {
            var stop = Stopwatch.StartNew();
            var accepted = 0;
            await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
            {
                while (stop.Elapsed < duration)
                {
                    using var response = await http.PostAsJsonAsync(path, new { inputs = new { } });
                    if (response.StatusCode == System.Net.HttpStatusCode.Accepted)
                    {
                        Interlocked.Increment(ref accepted);
                    }
                }
            }));
            return accepted;
        }
        async Task<long> UnfinishedAsync()
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM connector_executions WHERE finished_at IS NULL");
        }
        async Task WaitForDrainAsync()
        {
            for (var deadline = DateTime.UtcNow.AddMinutes(5); await UnfinishedAsync() > 0 && DateTime.UtcNow < deadline;)
            {
                await Task.Delay(100);
            }
        }

        Console.WriteLine($"warm-up: {warmupSeconds} s …");
        await DriveAsync(TimeSpan.FromSeconds(warmupSeconds));
        await WaitForDrainAsync();
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("DELETE FROM connector_executions");
            await connection.ExecuteAsync("VACUUM ANALYZE jobs");
            await connection.ExecuteAsync("VACUUM ANALYZE connector_executions");
        }
        Console.WriteLine($"{clients} clients POST executions for {seconds} s …");
        var total = await DriveAsync(TimeSpan.FromSeconds(seconds));
        await WaitForDrainAsync();
        (double Seconds, double P50, double P99, long Succeeded) figures;
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            figures = await connection.QuerySingleAsync<(double, double, double, long)>(
                """
                SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 * 1000,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 * 1000,
                       count(*) FILTER (WHERE status = 'succeeded')
                  FROM connector_executions
                """);
        }
        await app.StopAsync();
        await app.DisposeAsync();
        if (total == 0 || figures.Succeeded != total || figures.Seconds <= 0)
        {
            // No figure from a run that lost track of its executions: say what was found instead.
            Console.Error.WriteLine($"e2e: {total} executions were accepted, but {figures.Succeeded} were found succeeded after the drain; no figures.");
            home.Delete(recursive: true);
            return 1;
        }
        var rate = total / figures.Seconds;

        Console.WriteLine($"bare loop: queueing {total} executions …");
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("DELETE FROM connector_executions");
        }
        await DispatchBenchmark.QueueAsync(db, owner.WorkspaceId!, Guid.Parse(connectorId), total);
        var bare = await DispatchBenchmark.BareLoopAsync(db, stub.Url, clients, total);
        home.Delete(recursive: true);

        Console.WriteLine($"accepted {total} executions in {seconds} s from {clients} clients; {figures.Succeeded} succeeded");
        Console.WriteLine($"accepted→finished p50_ms: {figures.P50:F1}");
        Console.WriteLine($"accepted→finished p99_ms: {figures.P99:F1}");
        Console.WriteLine($"bare SKIP LOCKED drain of the same executions: {bare:F0} executions/s");
        Console.WriteLine($"e2e_exec_per_s: {rate:F0}");
        Console.WriteLine($"ratio: {rate / bare:F3}");
        return figures.Succeeded == total ? 0 : 1;
    }
}
