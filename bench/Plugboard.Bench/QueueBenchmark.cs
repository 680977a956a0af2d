using System.Collections.Concurrent;
using System.Diagnostics;
using Dapper;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Plugboard.Data;
using Plugboard.Jobs;

namespace Plugboard.Bench;

/// <summary>
/// The job queue: 10,000 no-op jobs (spread over 50 workspaces) drained by <see cref="JobWorker"/> with 20 slots, with
/// single probe jobs enqueued while it drains, each by a workspace of its own (enqueue → start latency: a tenant's
/// job does not wait behind another tenant's backlog), then idle wake-up latency and idle database
/// transactions per second; then the same 10,000 jobs drained from the same table by a bare batched
/// FOR UPDATE SKIP LOCKED loop (claim a batch, run it, delete it) with the same 20 jobs in flight.
/// </summary>
public static class QueueBenchmark
{
    private const string Kind = "bench.noop";
    private const string ProbeKind = "bench.probe";

    public static async Task<int> RunAsync(string[] args)
    {
        var jobs = BenchTools.Arg(args, "--jobs", 10_000);
        var slots = BenchTools.Arg(args, "--slots", 20);
        var bareLoops = BenchTools.Arg(args, "--bare-loops", 2);
        var settings = await BenchDatabase.CreateAsync("queue");
        Migrator.Up(settings);
        await using var db = new Db(settings);
        await using var queue = new JobQueue(db);

        // JobWorker ------------------------------------------------------------------------------------------
        await EnqueueAsync(db, jobs);
        var handled = 0;
        var probeStarts = new ConcurrentDictionary<Guid, long>();
        var handler = new NoopHandler(probeStarts, () => Interlocked.Increment(ref handled));
        var workerCount = BenchTools.Arg(args, "--workers", 1);
        var workers = Enumerable.Range(0, workerCount).Select(_ => new JobWorker(queue, [handler, handler.Probe], new JobWorkerOptions { Concurrency = slots / workerCount }, NullLogger<JobWorker>.Instance)).ToList();
        var clock = Stopwatch.StartNew();
        foreach (var worker in workers)
        {
            await worker.StartAsync(CancellationToken.None);
        }
        var probes = new ConcurrentDictionary<Guid, long>();
        var probing = Task.Run(async () =>
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            for (var n = 0; Volatile.Read(ref handled) < jobs; n++)
            {
                var at = Stopwatch.GetTimestamp();
                var id = await JobQueue.EnqueueAsync(connection, null, new JobRequest(ProbeKind, $"ws_probe{n:0000}"), CancellationToken.None);
                probes[id] = at;
                await Task.Delay(5);
            }
        });
        await WaitAsync(settings, "SELECT count(*) FROM jobs WHERE kind = 'bench.noop'");
        var workerSeconds = clock.Elapsed.TotalSeconds;
        await probing;
        await WaitAsync(settings, "SELECT count(*) FROM jobs");
        var busy = Latencies(probes, probeStarts);

        probes.Clear();
        probeStarts.Clear();
        await Task.Delay(500);
        await using (var connection = await db.Service.OpenConnectionAsync())
        {
            for (var i = 0; i < 200; i++)
            {
                var at = Stopwatch.GetTimestamp();
                var id = await JobQueue.EnqueueAsync(connection, null, new JobRequest(ProbeKind, "ws_probe"), CancellationToken.None);
                probes[id] = at;
                await Task.Delay(10);
            }
        }
        await WaitAsync(settings, "SELECT count(*) FROM jobs");
        var idle = Latencies(probes, probeStarts);

        // Backends report statistics lazily: an idle one may hold its counts for up to 10 s. Wait that out so the busy
        // phase's transactions are not counted as idle ones.
        await Task.Delay(11_000);
        var idleStart = await CommitsAsync(db, queue);
        var idleClock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(BenchTools.Arg(args, "--idle-seconds", 5)));
        var idleCommits = await CommitsAsync(db, queue) - idleStart - 1; // less the first read's own transaction
        var idleRate = idleCommits / idleClock.Elapsed.TotalSeconds;
        foreach (var worker in workers)
        {
            await worker.StopAsync(CancellationToken.None);
            worker.Dispose();
        }

        // Bare loop ------------------------------------------------------------------------------------------
        await EnqueueAsync(db, jobs);
        var bareHandled = 0;
        var batch = Math.Max(1, slots / bareLoops);
        clock.Restart();
        await Task.WhenAll(Enumerable.Range(0, bareLoops).Select(_ => Task.Run(async () =>
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            while (true)
            {
                var claimed = (await connection.QueryAsync<(Guid Id, string Payload)>(
                    """
                    UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = 'bare', lease_expires_at = now() + interval '30 seconds'
                     WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND run_at <= now() ORDER BY priority DESC, run_at
                                  LIMIT @batch FOR UPDATE SKIP LOCKED)
                    RETURNING id, payload::text
                    """, new { batch })).AsList();
                if (claimed.Count == 0)
                {
                    return;
                }
                await Task.WhenAll(claimed.Select(j => Task.Run(() => Interlocked.Increment(ref bareHandled))));
                await connection.ExecuteAsync("DELETE FROM jobs WHERE id = ANY(@ids) AND locked_by = 'bare'", new { ids = claimed.Select(j => j.Id).ToArray() });
            }
        })));
        var bareSeconds = clock.Elapsed.TotalSeconds;
        await using (var owner = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            Check(bareHandled == jobs && await owner.ExecuteScalarAsync<long>("SELECT count(*) FROM jobs") == 0, "the bare loop did not drain the queue");
        }

        var workerRate = jobs / workerSeconds;
        var bareRate = jobs / bareSeconds;
        Console.WriteLine($"jobs: {jobs} no-op jobs over 50 workspaces; JobWorker {slots} slots; bare loop {bareLoops} loops × {batch} jobs");
        Console.WriteLine($"JobWorker drain: {workerSeconds:F2} s = {workerRate:F0} jobs/s");
        Console.WriteLine($"enqueue→start while draining (one job per new workspace, n={busy.Count}): p50 {BenchTools.Percentile(busy, 0.5):F1} ms  p99 {BenchTools.Percentile(busy, 0.99):F1} ms");
        Console.WriteLine($"enqueue→start idle (n={idle.Count}): p50 {BenchTools.Percentile(idle, 0.5):F1} ms  p99 {BenchTools.Percentile(idle, 0.99):F1} ms");
        Console.WriteLine($"idle: {idleRate:F2} transactions/s (pg_stat_database xact_commit over {idleClock.Elapsed.TotalSeconds:F1} s, this measurement's own connections included)");
        Console.WriteLine($"bare SKIP LOCKED loop drain: {bareSeconds:F2} s = {bareRate:F0} jobs/s");
        Console.WriteLine($"ratio: {workerRate / bareRate:F3}");
        return 0;
    }

    private sealed class NoopHandler(ConcurrentDictionary<Guid, long> probeStarts, Action counted) : IJobHandler
    {
        public string Kind => QueueBenchmark.Kind;

        public IJobHandler Probe { get; } = new ProbeHandler(probeStarts);

        public Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
        {
            counted();
            return Task.CompletedTask;
        }
    }

    private sealed class ProbeHandler(ConcurrentDictionary<Guid, long> starts) : IJobHandler
    {
        public string Kind => ProbeKind;

        public Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
        {
            starts[job.Id] = Stopwatch.GetTimestamp();
            return Task.CompletedTask;
        }
    }

    private static async Task EnqueueAsync(Db db, int count)
    {
        await using var connection = await db.Service.OpenConnectionAsync();
        await JobQueue.EnqueueManyAsync(connection, null,
            Enumerable.Range(0, count).Select(i => new JobRequest(Kind, $"ws_{i % 50:00}", new { n = i })).ToList(), CancellationToken.None);
        await connection.ExecuteAsync("ANALYZE jobs");
    }

    private static async Task WaitAsync(DatabaseSettings settings, string countSql)
    {
        await using var owner = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(settings.OwnerConnectionString) { Pooling = false }.ConnectionString);
        await owner.OpenAsync();
        var deadline = Stopwatch.StartNew();
        while (await owner.ExecuteScalarAsync<long>(countSql) > 0)
        {
            Check(deadline.Elapsed < TimeSpan.FromMinutes(5), "the queue did not drain in 5 minutes");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Committed transactions in the bench database so far. Backends report statistics lazily (idle ones up to
    /// seconds later), so idle pooled connections are closed first — their backends report as they exit — and the
    /// reading connection is unpooled (its own transaction is reported when it closes, counted by the next read).
    /// </summary>
    private static async Task<long> CommitsAsync(Db db, JobQueue queue)
    {
        queue.ClearPool();
        db.Service.Clear();
        await Task.Delay(300);
        await using var reader = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(db.Settings.OwnerConnectionString) { Pooling = false }.ConnectionString);
        await reader.OpenAsync();
        return await reader.ExecuteScalarAsync<long>("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
    }

    private static List<double> Latencies(ConcurrentDictionary<Guid, long> enqueued, ConcurrentDictionary<Guid, long> started)
    {
        Check(enqueued.Keys.All(started.ContainsKey), "a probe job never started");
        return enqueued.Select(p => Stopwatch.GetElapsedTime(p.Value, started[p.Key]).TotalMilliseconds).Order().ToList();
    }



    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }
}
