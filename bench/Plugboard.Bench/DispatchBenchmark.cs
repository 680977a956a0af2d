using Microsoft.AspNetCore.Builder;
using System.Diagnostics;
using Dapper;
using Microsoft.AspNetCore.Http;
using Npgsql;
using Plugboard.Data;
using Plugboard.Features.Executions;
using Plugboard.Hosting;
using Plugboard.Jobs;
using Plugboard.Security;

namespace Plugboard.Bench;

/// <summary>
/// Dispatch: 10,000 queued executions of a one-request manifest (to a stub on 127.0.0.1) drained by Plugboard's
/// workers (a `plugboard worker` process, warmed up first so the figures are its steady state), with queued→running
/// latency of single executions enqueued in another workspace during the drain, measured from the commit that queued
/// each one to the moment a worker marked it running; then the same drain by a bare batched FOR UPDATE SKIP LOCKED
/// loop over the same jobs table (one HTTP request and one result write per execution) in the same run.
/// </summary>
public static class DispatchBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var total = BenchTools.Arg(args, "--executions", 10_000);
        var slots = BenchTools.Arg(args, "--concurrency", 20);
        var settings = await BenchDatabase.CreateAsync("dispatch");
        Migrator.Up(settings);
        var keyedLimit = BenchTools.Arg(args, "--keyed-concurrency", 8);
        var keyedTotal = BenchTools.Arg(args, "--keyed-executions", 200);
        var keyedDelay = TimeSpan.FromMilliseconds(BenchTools.Arg(args, "--keyed-request-ms", 300));
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/ping", () => Results.Json(new { ok = true }));
            app.MapGet("/slow", async () =>
            {
                await Task.Delay(keyedDelay);
                return Results.Json(new { ok = true });
            });
        }, record: false);
        var keys = KeyRing.Generate();
        await using var db = new Db(settings);
        var manifest = System.Text.Json.JsonSerializer.Serialize(new
        {
            version = 1,
            base_url = stub.Url,
            steps = new[] { new { id = "ping", request = new { method = "GET", path = "/ping" } } },
        });
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync(
                """
                INSERT INTO workspaces (id, name) VALUES ('ws_bulk', 'bulk'), ('ws_probe', 'probe'), ('ws_keyed', 'keyed');
                INSERT INTO connectors (workspace_id, id, name, manifest, max_concurrency) VALUES
                    ('ws_bulk', '00000000-0000-0000-0000-000000000001', 'bulk', @manifest::jsonb, 100),
                    ('ws_probe', '00000000-0000-0000-0000-000000000002', 'probe', @manifest::jsonb, 100),
                    ('ws_keyed', '00000000-0000-0000-0000-000000000003', 'keyed', replace(@manifest, '/ping', '/slow')::jsonb, @keyedLimit);
                """, new { manifest, keyedLimit });
        }
        var bulk = Guid.Parse("00000000-0000-0000-0000-000000000001");
        var probe = Guid.Parse("00000000-0000-0000-0000-000000000002");

        // The workers run as a real `plugboard worker` process, as in production; this process only drives and measures.
        // A warm-up drain first (not measured), so the figures are the steady state rather than the JIT's first seconds.
        var workerHome = Directory.CreateTempSubdirectory("plugboard-bench-worker");
        using var worker = StartWorker(settings, keys, slots, workerHome.FullName);
        var warmup = BenchTools.Arg(args, "--warmup", 10_000);
        Console.WriteLine($"warm-up: {warmup} executions …");
        await QueueAsync(db, "ws_probe", probe, warmup);
        await WaitAsync(async () => await CountAsync(db, "ws_probe", "succeeded") == warmup);
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("DELETE FROM connector_executions");
            await connection.ExecuteAsync("VACUUM ANALYZE jobs");
            await connection.ExecuteAsync("VACUUM ANALYZE connector_executions");
        }

        Console.WriteLine($"queueing {total} executions in one transaction …");
        await QueueAsync(db, "ws_bulk", bulk, total);
        // Each probe's latency runs from the moment its transaction committed (when an API client would get its 202)
        // to the moment a worker marked it running.
        var probes = new List<Guid>();
        var committed = new List<DateTime>();
        var done = false;
        while (!done)
        {
            probes.Add((await QueueAsync(db, "ws_probe", probe, 1))[0]);
            committed.Add(DateTime.UtcNow);
            await Task.Delay(20);
            done = probes.Count % 10 == 0 && !await AnyJobsLeftAsync(db, "ws_bulk");
        }
        await WaitAsync(async () => await CountAsync(db, "ws_bulk", "succeeded") + await CountAsync(db, "ws_bulk", "failed") == total);
        var drained = await DrainTimeAsync(db, "ws_bulk");
        await WaitAsync(async () => await CountAsync(db, "ws_probe", "succeeded") == probes.Count);

        // One connector limited to K at once, whose requests take T: a backlog with no new inserts should run at K / T.
        Console.WriteLine($"keyed: {keyedTotal} executions of one connector with max_concurrency {keyedLimit}, {keyedDelay.TotalMilliseconds:F0} ms a request …");
        var keyed = Guid.Parse("00000000-0000-0000-0000-000000000003");
        await QueueAsync(db, "ws_keyed", keyed, keyedTotal, keyedLimit);
        await WaitAsync(async () => await CountAsync(db, "ws_keyed", "succeeded") + await CountAsync(db, "ws_keyed", "failed") == keyedTotal, TimeSpan.FromMinutes(10));
        var keyedRate = keyedTotal / (await DrainTimeAsync(db, "ws_keyed")).TotalSeconds;
        var keyedIdeal = keyedLimit / keyedDelay.TotalSeconds;
        worker.Kill(entireProcessTree: true);
        await worker.WaitForExitAsync();
        workerHome.Delete(recursive: true);
        var failed = await CountAsync(db, "ws_bulk", "failed");
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            var handled = await connection.QuerySingleAsync<(double Avg, double P99)>(
                "SELECT avg(duration_ms)::float8, percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms)::float8 FROM connector_executions WHERE workspace_id = 'ws_bulk'");
            Console.WriteLine($"run time per execution inside the worker: avg {handled.Avg:F1} ms, p99 {handled.P99:F1} ms");
        }
        var probed = await QueryProbesAsync(db, probes, committed);
        var latencies = probed.Select(p => p.Ms).Order().ToList();
        // Where the slowest probes fell in the drain (seconds after its first start), to line them up with other events.
        Console.WriteLine($"slowest probes (s into the drain: ms, ms its own insert took): {string.Join(", ", probed.OrderByDescending(p => p.Ms).Take(5).Select(p => $"{p.At:F2}: {p.Ms:F0} ({p.InsertMs:F0})"))}");
        var rate = total / drained.TotalSeconds;

        Console.WriteLine($"bare loop: queueing {total} executions …");
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("DELETE FROM connector_executions");
        }
        await QueueAsync(db, "ws_bulk", bulk, total);
        var bare = await BareLoopAsync(db, stub.Url, slots, total);

        Console.WriteLine($"plugboard workers: {total} executions in {drained.TotalSeconds:F2} s ({failed} failed), {slots} slots");
        Console.WriteLine($"bare SKIP LOCKED loop: {bare:F0} executions/s");
        Console.WriteLine($"executions/s: {rate:F0}");
        Console.WriteLine($"p90_ms: {BenchTools.Percentile(latencies, 0.90):F1}, p95_ms: {BenchTools.Percentile(latencies, 0.95):F1}, max_ms: {latencies.LastOrDefault():F1}");
        Console.WriteLine($"p50_ms: {BenchTools.Percentile(latencies, 0.50):F1}");
        Console.WriteLine($"p99_ms: {BenchTools.Percentile(latencies, 0.99):F1}");
        Console.WriteLine($"latency probes: {latencies.Count} single executions queued in a second workspace during the drain");
        Console.WriteLine($"keyed: {keyedRate:F1} executions/s against {keyedIdeal:F1}/s for max_concurrency {keyedLimit} at {keyedDelay.TotalMilliseconds:F0} ms a request");
        Console.WriteLine($"keyed_ratio: {keyedRate / keyedIdeal:F3}");
        Console.WriteLine($"ratio: {rate / bare:F3}");
        return failed == 0 ? 0 : 1;
    }

    private static Process StartWorker(DatabaseSettings settings, KeyRing keys, int slots, string home)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugboard.dll"));
        start.ArgumentList.Add("worker");
        start.Environment["DATABASE_URL"] = settings.OwnerConnectionString;
        start.Environment["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword ?? "";
        start.Environment["PLUGBOARD_KEYS"] = keys.ToJson();
        start.Environment["PLUGBOARD_OUTBOUND_ALLOW"] = "127.0.0.1/32";
        start.Environment["PLUGBOARD_WORKER_CONCURRENCY"] = slots.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["PLUGBOARD_LOG_LEVEL"] = "Warning";
        start.Environment["PLUGBOARD_HOME"] = home;
        foreach (var name in new[] { "DOTNET_PerfMapEnabled", "DOTNET_EnableWriteXorExecute", "DOTNET_gcServer", "DOTNET_GCgen0size", "DOTNET_TieredPGO" })
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                start.Environment[name] = value; // profiling the worker with perf
            }
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    internal static async Task<List<Guid>> QueueAsync(Db db, string workspaceId, Guid connectorId, int count, int concurrencyLimit = 100)
    {
        var ids = new List<Guid>(count);
        await using var connection = await db.Service.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync(); // all become visible at once
        for (var offset = 0; offset < count; offset += 1000)
        {
            var batch = Enumerable.Range(0, Math.Min(1000, count - offset)).Select(_ => Guid.CreateVersion7()).ToArray();
            await connection.ExecuteAsync(
                "INSERT INTO connector_executions (workspace_id, id, connector_id, trigger) SELECT @workspaceId, id, @connectorId, 'api' FROM unnest(@batch) id",
                new { workspaceId, connectorId, batch }, tx);
            await JobQueue.EnqueueManyAsync(connection, tx, batch.Select(id => ExecutionJob.Request(workspaceId, connectorId, id, concurrencyLimit)).ToList(), CancellationToken.None);
            ids.AddRange(batch);
        }
        await tx.CommitAsync();
        return ids;
    }

    /// <summary>The baseline: claim a batch with SKIP LOCKED, make the request, write the result, delete the job.</summary>
    internal static async Task<double> BareLoopAsync(Db db, string stubUrl, int loops, int total)
    {
        using var http = new HttpClient { BaseAddress = new Uri(stubUrl) };
        var clock = Stopwatch.StartNew();
        var done = 0;
        await Task.WhenAll(Enumerable.Range(0, loops).Select(async _ =>
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            while (true)
            {
                await using var tx = await connection.BeginTransactionAsync();
                var claimed = (await connection.QueryAsync<Guid>(
                    "SELECT id FROM jobs WHERE state = 'available' AND run_at <= now() ORDER BY priority DESC, run_at LIMIT 5 FOR UPDATE SKIP LOCKED", transaction: tx)).AsList();
                if (claimed.Count == 0)
                {
                    await tx.CommitAsync();
                    if (Volatile.Read(ref done) >= total)
                    {
                        return;
                    }
                    await Task.Delay(1);
                    continue;
                }
                foreach (var id in claimed)
                {
                    using var response = await http.GetAsync("/ping");
                    var body = await response.Content.ReadAsStringAsync();
                    await connection.ExecuteAsync(
                        "UPDATE connector_executions SET status = 'succeeded', output = @body::jsonb, started_at = now(), finished_at = now() WHERE id = @id",
                        new { id, body }, tx);
                }
                await connection.ExecuteAsync("DELETE FROM jobs WHERE id = ANY(@claimed)", new { claimed }, tx);
                await tx.CommitAsync();
                Interlocked.Add(ref done, claimed.Count);
            }
        }));
        return total / clock.Elapsed.TotalSeconds;
    }

    /// <summary>From the first execution started to the last finished, as recorded by the workers.</summary>
    private static async Task<TimeSpan> DrainTimeAsync(Db db, string workspaceId)
    {
        await using var connection = await db.Service.OpenConnectionAsync();
        var seconds = await connection.ExecuteScalarAsync<double>(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM connector_executions WHERE workspace_id = @workspaceId", new { workspaceId });
        return TimeSpan.FromSeconds(seconds);
    }

    private static async Task<bool> AnyJobsLeftAsync(Db db, string workspaceId)
    {
        await using var connection = await db.Service.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT FROM jobs WHERE workspace_id = @workspaceId)", new { workspaceId });
    }

    private static async Task<long> CountAsync(Db db, string workspaceId, string status)
    {
        await using var connection = await db.Service.OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM connector_executions WHERE workspace_id = @workspaceId AND status = @status", new { workspaceId, status });
    }

    /// <summary>Per probe: when it was queued (s after the drain's first start), its queued→running latency and how long its own insert took (ms).</summary>
    private static async Task<List<(double At, double Ms, double InsertMs)>> QueryProbesAsync(Db db, List<Guid> probes, List<DateTime> committed)
    {
        await using var connection = await db.Service.OpenConnectionAsync();
        return (await connection.QueryAsync<(double At, double Ms, double InsertMs)>(
            """
            SELECT extract(epoch FROM t.committed - (SELECT min(started_at) FROM connector_executions WHERE workspace_id = 'ws_bulk'))::float8,
                   extract(epoch FROM p.started_at - t.committed)::float8 * 1000,
                   extract(epoch FROM t.committed - p.created_at)::float8 * 1000
              FROM connector_executions p JOIN unnest(@probes, @committed) AS t(id, committed) ON t.id = p.id
             WHERE p.started_at IS NOT NULL
            """, new { probes, committed })).AsList();
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(2));
        while (!await condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
    }


}
