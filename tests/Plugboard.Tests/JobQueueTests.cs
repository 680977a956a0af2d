using System.Collections.Concurrent;
using System.Data;
using System.Diagnostics;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Plugboard.Data;
using Plugboard.Jobs;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// The job queue on a quiet database of its own per test: transactional enqueue, LISTEN/NOTIFY wake-ups, exactly-once
/// results under concurrent workers and expired leases, retries and dead letters, fairness, concurrency limits, RLS.
/// </summary>
public sealed class JobQueueTests
{
    private sealed class QuietQueue : IAsyncDisposable
    {
        public required DatabaseSettings Settings { get; init; }
        public required Db Db { get; init; }
        public required JobQueue Queue { get; init; }

        public async Task<T> ScalarAsync<T>(string sql, object? args = null)
        {
            await using var connection = new NpgsqlConnection(Settings.OwnerConnectionString);
            return (await connection.ExecuteScalarAsync<T>(sql, args))!;
        }

        public async Task ExecuteAsync(string sql, object? args = null)
        {
            await using var connection = new NpgsqlConnection(Settings.OwnerConnectionString);
            await connection.ExecuteAsync(sql, args);
        }

        public async Task<Guid> EnqueueAsync(JobRequest job)
        {
            await using var connection = await Db.Service.OpenConnectionAsync();
            return await JobQueue.EnqueueAsync(connection, null, job, CancellationToken.None);
        }

        public async Task<IReadOnlyList<Guid>> EnqueueManyAsync(IReadOnlyList<JobRequest> jobs)
        {
            await using var connection = await Db.Service.OpenConnectionAsync();
            return await JobQueue.EnqueueManyAsync(connection, null, jobs, CancellationToken.None);
        }

        public async ValueTask DisposeAsync()
        {
            await Queue.DisposeAsync();
            await Db.DisposeAsync();
        }
    }

    private static async Task<QuietQueue> QuietQueueAsync()
    {
        var settings = await PlugboardServer.CreateDatabaseAsync("pbjobs_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        Migrator.Up(settings);
        await using (var owner = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            // Where handlers record the work they did: a second run of one job would break the primary key.
            await owner.ExecuteAsync("CREATE TABLE handled (job_id uuid PRIMARY KEY, attempt int NOT NULL); GRANT SELECT, INSERT ON handled TO plugboard_service");
        }
        var db = new Db(settings);
        return new QuietQueue { Settings = settings, Db = db, Queue = new JobQueue(db) };
    }

    private sealed class DelegateHandler(string kind, Func<ClaimedJob, JobContext, CancellationToken, Task> handle) : IJobHandler
    {
        public string Kind => kind;

        public Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct) => handle(job, context, ct);
    }

    private static JobWorker Worker(QuietQueue q, JobWorkerOptions options, params IJobHandler[] handlers) =>
        new(q.Queue, handlers, options, NullLogger<JobWorker>.Instance);

    /// <summary>Records the job in <c>handled</c> and completes it in the same transaction, as a real handler would.</summary>
    private static async Task<bool> RecordAndCompleteAsync(JobContext context, CancellationToken ct)
    {
        await using var connection = await context.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, ct);
        await connection.ExecuteAsync(new CommandDefinition("INSERT INTO handled (job_id, attempt) VALUES (@Id, @Attempt)",
            new { context.Job.Id, context.Job.Attempt }, transaction, cancellationToken: ct));
        if (!await context.CompleteAsync(connection, transaction, ct))
        {
            await transaction.RollbackAsync(ct);
            return false;
        }
        await transaction.CommitAsync(ct);
        return true;
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < timeout, $"timed out after {timeout.TotalSeconds} s waiting for {what}");
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_finished_job_wakes_the_next_job_of_its_key_at_once_not_at_the_next_poll(bool failing)
    {
        await using var q = await QuietQueueAsync();
        var finished = new ConcurrentQueue<Guid>();
        // Polls far apart: only the freed slot's notification can start the next job of the key in time.
        var options = new JobWorkerOptions { Concurrency = 4, Prefetch = 0, PollInterval = TimeSpan.FromMinutes(5) };
        IJobHandler Handler() => new DelegateHandler("test.keyed-wake", async (job, context, ct) =>
        {
            if (failing && job.Attempt == 1)
            {
                throw new RetryJobLater(TimeSpan.Zero, "once more");
            }
            await RecordAndCompleteAsync(context, ct);
            finished.Enqueue(job.Id);
        });
        var workers = new[] { Worker(q, options, Handler()), Worker(q, options, Handler()) };
        foreach (var worker in workers)
        {
            await worker.StartAsync(CancellationToken.None);
            await worker.Listening;
        }
        try
        {
            // Five jobs of one key that runs one at a time: every one after the first waits for a freed slot.
            await q.EnqueueManyAsync(Enumerable.Range(0, 5).Select(_ => new JobRequest("test.keyed-wake", "ws_a", ConcurrencyKey: "connector-1", ConcurrencyLimit: 1)).ToList());
            await EventuallyAsync(() => Task.FromResult(finished.Count == 5), TimeSpan.FromSeconds(60), "five keyed jobs, one after another");
        }
        finally
        {
            foreach (var worker in workers)
            {
                await worker.StopAsync(CancellationToken.None);
            }
        }
    }

    [Fact]
    public async Task Prefetched_jobs_wait_for_a_slot_and_go_back_to_the_queue_when_the_worker_stops()
    {
        await using var q = await QuietQueueAsync();
        var release = new TaskCompletionSource();
        var started = new ConcurrentQueue<Guid>();
        var worker = Worker(q, new JobWorkerOptions { Concurrency = 1, Prefetch = 3, PollInterval = TimeSpan.FromMilliseconds(200), ShutdownTimeout = TimeSpan.FromSeconds(10) },
            new DelegateHandler("test.prefetch", async (job, context, ct) =>
            {
                started.Enqueue(job.Id);
                await release.Task.WaitAsync(ct);
                await RecordAndCompleteAsync(context, ct);
            }));
        await q.EnqueueManyAsync(Enumerable.Range(0, 4).Select(_ => new JobRequest("test.prefetch", "ws_a")).ToList());
        await worker.StartAsync(CancellationToken.None);
        await EventuallyAsync(async () => await q.ScalarAsync<long>("SELECT count(*) FROM jobs WHERE state = 'running'") == 4, TimeSpan.FromSeconds(10), "four claimed jobs");
        await Task.Delay(300);
        Assert.Single(started); // one slot: the three prefetched jobs hold leases but have not started
        var stopping = worker.StopAsync(CancellationToken.None);
        release.SetResult();
        await stopping;
        Assert.Single(started);
        Assert.Equal(1, await q.ScalarAsync<long>("SELECT count(*) FROM handled"));
        Assert.Equal(3, await q.ScalarAsync<long>("SELECT count(*) FROM jobs WHERE state = 'available' AND locked_by IS NULL AND run_at <= now()"));
    }

    [Fact]
    public async Task Rolled_back_enqueue_leaves_no_job_and_a_commit_wakes_a_listening_worker_within_a_second()
    {
        await using var q = await QuietQueueAsync();
        var started = new ConcurrentQueue<(Guid Id, long At)>();
        var worker = Worker(q, new JobWorkerOptions { PollInterval = TimeSpan.FromSeconds(30) }, new DelegateHandler("test.wake", (job, _, _) =>
        {
            started.Enqueue((job.Id, Stopwatch.GetTimestamp()));
            return Task.CompletedTask;
        }));
        await worker.StartAsync(CancellationToken.None);
        try
        {
            await worker.Listening.WaitAsync(TimeSpan.FromSeconds(10));
            await Task.Delay(200); // the claim that follows connecting finds nothing; from now on only NOTIFY (or the 30 s poll) wakes it

            await using (var connection = await q.Db.Service.OpenConnectionAsync())
            {
                await using var transaction = await connection.BeginTransactionAsync();
                await JobQueue.EnqueueAsync(connection, transaction, new JobRequest("test.wake", "ws_a"), CancellationToken.None);
                await transaction.RollbackAsync();
            }
            Assert.Equal(0, await q.ScalarAsync<long>("SELECT count(*) FROM jobs"));

            for (var i = 0; i < 5; i++)
            {
                Guid id;
                long committedAt;
                await using (var connection = await q.Db.Service.OpenConnectionAsync())
                {
                    await using var transaction = await connection.BeginTransactionAsync();
                    id = await JobQueue.EnqueueAsync(connection, transaction, new JobRequest("test.wake", "ws_a"), CancellationToken.None);
                    await Task.Delay(100); // nothing runs before the commit
                    Assert.Empty(started);
                    await transaction.CommitAsync();
                    committedAt = Stopwatch.GetTimestamp();
                }
                await EventuallyAsync(() => Task.FromResult(started.Any(s => s.Id == id)), TimeSpan.FromSeconds(5), "the worker to start the job");
                var latency = Stopwatch.GetElapsedTime(committedAt, started.Single(s => s.Id == id).At);
                Assert.True(latency < TimeSpan.FromSeconds(1), $"enqueue → start took {latency.TotalMilliseconds:F0} ms");
                started.Clear();
                await EventuallyAsync(async () => await q.ScalarAsync<long>("SELECT count(*) FROM jobs") == 0, TimeSpan.FromSeconds(5), "completion");
            }
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Two_workers_draining_2000_jobs_run_each_job_exactly_once()
    {
        await using var q = await QuietQueueAsync();
        var runs = new ConcurrentDictionary<Guid, int>();
        var handler = new DelegateHandler("test.drain", async (job, context, ct) =>
        {
            runs.AddOrUpdate(job.Id, 1, (_, n) => n + 1);
            Assert.True(await RecordAndCompleteAsync(context, ct));
        });
        var ids = await q.EnqueueManyAsync(Enumerable.Range(0, 2000).Select(i => new JobRequest("test.drain", $"ws_{i % 7}", new { n = i })).ToList());
        var options = new JobWorkerOptions { Concurrency = 8, PollInterval = TimeSpan.FromSeconds(1) };
        var first = Worker(q, options, handler);
        var second = Worker(q, options, handler);
        await Task.WhenAll(first.StartAsync(CancellationToken.None), second.StartAsync(CancellationToken.None));
        try
        {
            await EventuallyAsync(async () => await q.ScalarAsync<long>("SELECT count(*) FROM jobs") == 0, TimeSpan.FromSeconds(90), "the queue to drain");
        }
        finally
        {
            await Task.WhenAll(first.StopAsync(CancellationToken.None), second.StopAsync(CancellationToken.None));
        }
        Assert.Equal(2000, await q.ScalarAsync<long>("SELECT count(*) FROM handled"));
        Assert.Equal(ids.Order(), runs.Keys.Order());
        Assert.All(runs, r => Assert.Equal(1, r.Value));
        Assert.Equal(0, await q.ScalarAsync<long>("SELECT count(*) FROM handled WHERE attempt <> 1"));
    }

    [Fact]
    public async Task An_expired_lease_is_reclaimed_with_another_attempt_and_the_result_applies_once()
    {
        await using var q = await QuietQueueAsync();
        var id = await q.EnqueueAsync(new JobRequest("test.lease", "ws_a"));
        var dead = (await q.Queue.ClaimAsync("dead-worker", 10, TimeSpan.FromSeconds(1), CancellationToken.None)).Single();
        Assert.Equal((id, 1), (dead.Id, dead.Attempt));
        Assert.Empty(await q.Queue.ClaimAsync("live-worker", 10, TimeSpan.FromSeconds(30), CancellationToken.None));

        await Task.Delay(1300); // the dead worker never renews
        var live = (await q.Queue.ClaimAsync("live-worker", 10, TimeSpan.FromSeconds(30), CancellationToken.None)).Single();
        Assert.Equal((id, 2, "live-worker"), (live.Id, live.Attempt, live.WorkerId));
        Assert.Empty(await q.Queue.RenewAsync("dead-worker", [dead], TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Equal(new[] { id }, await q.Queue.RenewAsync("live-worker", [live], TimeSpan.FromSeconds(30), CancellationToken.None));

        Assert.True(await RecordAndCompleteAsync(new JobContext(q.Queue, live), CancellationToken.None));
        // The presumed-dead worker wakes up and tries to apply its result: refused, and its transaction rolls back.
        var ex = await Assert.ThrowsAsync<PostgresException>(() => RecordAndCompleteAsync(new JobContext(q.Queue, dead), CancellationToken.None));
        Assert.Equal(PostgresErrorCodes.UniqueViolation, ex.SqlState);
        await using (var connection = await q.Db.Service.OpenConnectionAsync())
        {
            Assert.False(await JobQueue.CompleteAsync(connection, null, dead, CancellationToken.None));
        }
        Assert.Equal(1, await q.ScalarAsync<long>("SELECT count(*) FROM handled"));
        Assert.Equal(2, await q.ScalarAsync<int>("SELECT attempt FROM handled"));
        Assert.Equal(0, await q.ScalarAsync<long>("SELECT count(*) FROM jobs"));
    }

    [Fact]
    public async Task A_stale_lease_cannot_complete_even_before_anyone_else_writes()
    {
        await using var q = await QuietQueueAsync();
        await q.EnqueueAsync(new JobRequest("test.lease", null));
        var dead = (await q.Queue.ClaimAsync("dead-worker", 1, TimeSpan.FromSeconds(1), CancellationToken.None)).Single();
        await Task.Delay(1300);
        var live = (await q.Queue.ClaimAsync("live-worker", 1, TimeSpan.FromSeconds(30), CancellationToken.None)).Single();
        // The stale worker's transaction writes first: its completion is refused, so it rolls back and writes nothing.
        Assert.False(await RecordAndCompleteAsync(new JobContext(q.Queue, dead), CancellationToken.None));
        Assert.Equal(FailOutcome.LeaseLost, await q.Queue.FailAsync(dead, "late", CancellationToken.None));
        Assert.True(await RecordAndCompleteAsync(new JobContext(q.Queue, live), CancellationToken.None));
        Assert.Equal(2, await q.ScalarAsync<int>("SELECT attempt FROM handled"));
    }

    [Fact]
    public async Task Failures_retry_with_backoff_then_go_dead_after_max_attempts_keeping_the_last_error()
    {
        await using var q = await QuietQueueAsync();
        var id = await q.EnqueueAsync(new JobRequest("test.retry", "ws_a", MaxAttempts: 3));
        var lease = TimeSpan.FromSeconds(30);

        var first = (await q.Queue.ClaimAsync("w", 1, lease, CancellationToken.None)).Single();
        Assert.Equal(FailOutcome.Retrying, await q.Queue.FailAsync(first, "boom 1", CancellationToken.None));
        var delay = await q.ScalarAsync<double>("SELECT extract(epoch FROM run_at - now()) FROM jobs WHERE id = @id AND state = 'available' AND attempts = 1", new { id });
        Assert.InRange(delay, 0.5, 1.3); // first backoff ≈ 1 s ± 25 %
        Assert.Empty(await q.Queue.ClaimAsync("w", 1, lease, CancellationToken.None)); // not due yet
        Assert.Equal(1, (await q.Queue.StatsAsync(CancellationToken.None)).Retrying);

        await q.ExecuteAsync("UPDATE jobs SET run_at = now() WHERE id = @id", new { id });
        var second = (await q.Queue.ClaimAsync("w", 1, lease, CancellationToken.None)).Single();
        Assert.Equal(2, second.Attempt);
        Assert.Equal(FailOutcome.Retrying, await q.Queue.FailAsync(second, "boom 2", CancellationToken.None, retryAfter: TimeSpan.Zero));

        var third = (await q.Queue.ClaimAsync("w", 1, lease, CancellationToken.None)).Single();
        Assert.Equal(3, third.Attempt);
        Assert.Equal(FailOutcome.Dead, await q.Queue.FailAsync(third, "boom 3", CancellationToken.None));
        var row = await q.ScalarAsync<string>("SELECT state || '|' || attempts || '|' || last_error || '|' || (finished_at IS NOT NULL) FROM jobs WHERE id = @id", new { id });
        Assert.Equal("dead|3|boom 3|true", row);
        Assert.Empty(await q.Queue.ClaimAsync("w", 1, lease, CancellationToken.None));

        Assert.InRange(JobQueue.Backoff(1).TotalSeconds, 0.75, 1.25);
        Assert.InRange(JobQueue.Backoff(5).TotalSeconds, 12, 20);
        Assert.InRange(JobQueue.Backoff(1000).TotalSeconds, 2700, 4500);
    }

    [Fact]
    public async Task A_lease_that_expires_on_the_final_attempt_goes_dead()
    {
        await using var q = await QuietQueueAsync();
        var id = await q.EnqueueAsync(new JobRequest("test.final", "ws_a", MaxAttempts: 1));
        Assert.Single(await q.Queue.ClaimAsync("dead-worker", 1, TimeSpan.FromSeconds(1), CancellationToken.None));
        await Task.Delay(1300);
        Assert.Empty(await q.Queue.ClaimAsync("w", 1, TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Equal("dead", await q.ScalarAsync<string>("SELECT state FROM jobs WHERE id = @id", new { id }));
        Assert.Contains("lease expired", await q.ScalarAsync<string>("SELECT last_error FROM jobs WHERE id = @id", new { id }));
    }

    [Fact]
    public async Task Handler_outcomes_permanent_failure_is_dead_at_once_other_errors_retry_and_cancelled_jobs_never_run()
    {
        await using var q = await QuietQueueAsync();
        var permanent = await q.EnqueueAsync(new JobRequest("test.permanent", "ws_a", MaxAttempts: 10));
        var transient = await q.EnqueueAsync(new JobRequest("test.transient", "ws_a", MaxAttempts: 10));
        var later = await q.EnqueueAsync(new JobRequest("test.later", "ws_a", MaxAttempts: 10));
        var cancelled = await q.EnqueueAsync(new JobRequest("test.transient", "ws_b"));
        Assert.True(await q.Queue.CancelAsync(cancelled, CancellationToken.None));
        Assert.False(await q.Queue.CancelAsync(cancelled, CancellationToken.None));
        var worker = Worker(q, new JobWorkerOptions { PollInterval = TimeSpan.FromMilliseconds(200) },
            new DelegateHandler("test.permanent", (_, _, _) => throw new PermanentJobFailure("the manifest is invalid")),
            new DelegateHandler("test.transient", (_, _, _) => throw new HttpRequestException("upstream 503")),
            new DelegateHandler("test.later", (_, _, _) => throw new RetryJobLater(TimeSpan.FromMinutes(10), "rate limited")));
        await worker.StartAsync(CancellationToken.None);
        try
        {
            await EventuallyAsync(async () => await q.ScalarAsync<long>("SELECT count(*) FROM jobs WHERE state = 'running' OR attempts = 0") == 1,
                TimeSpan.FromSeconds(10), "every job to be tried once");
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
        }
        await using var owner = new NpgsqlConnection(q.Settings.OwnerConnectionString);
        var rows = (await owner.QueryAsync<(Guid Id, string State, int Attempts, string? LastError, double Wait)>(
            "SELECT id, state, attempts, last_error, extract(epoch FROM run_at - now())::float8 FROM jobs")).ToDictionary(r => r.Id);
        Assert.Equal(("dead", 1, "PermanentJobFailure: the manifest is invalid"), (rows[permanent].State, rows[permanent].Attempts, rows[permanent].LastError));
        Assert.Equal(("available", "HttpRequestException: upstream 503"), (rows[transient].State, rows[transient].LastError));
        Assert.InRange(rows[transient].Attempts, 1, 2); // its first retry is due after about a second
        Assert.Equal(("available", 1), (rows[later].State, rows[later].Attempts));
        Assert.InRange(rows[later].Wait, 500, 600);
        Assert.Equal(("cancelled", 0), (rows[cancelled].State, rows[cancelled].Attempts));
    }

    [Fact]
    public async Task Claims_are_fair_across_workspaces()
    {
        await using var q = await QuietQueueAsync();
        await q.EnqueueManyAsync(Enumerable.Range(0, 500).Select(_ => new JobRequest("test.fair", "ws_big")).ToList());
        var small = await q.EnqueueManyAsync(Enumerable.Range(0, 5).Select(_ => new JobRequest("test.fair", "ws_small")).ToList());
        // The small workspace's jobs were enqueued last, behind 500 others, yet take turns with the big one's.
        var first = await q.Queue.ClaimAsync("w", 10, TimeSpan.FromSeconds(30), CancellationToken.None);
        var second = await q.Queue.ClaimAsync("w", 10, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal((10, 10), (first.Count, second.Count));
        Assert.True(first.Count(j => j.WorkspaceId == "ws_small") >= 3, "the small workspace's first jobs come in the first claim");
        Assert.Equal(small.Order(), first.Concat(second).Where(j => j.WorkspaceId == "ws_small").Select(j => j.Id).Order());

        // Priority still orders work within a workspace.
        var urgent = await q.EnqueueAsync(new JobRequest("test.fair", "ws_big", Priority: 5));
        var next = await q.Queue.ClaimAsync("w", 1, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(urgent, next.Single().Id);
    }

    [Fact]
    public async Task Concurrency_limits_per_key_hold_under_four_concurrent_claimers()
    {
        await using var q = await QuietQueueAsync();
        var jobs = Enumerable.Range(0, 60).SelectMany(i => new[]
        {
            new JobRequest("test.keyed", $"ws_{i % 3}", ConcurrencyKey: "connector-1"),
            new JobRequest("test.keyed", $"ws_{i % 3}", ConcurrencyKey: "connector-2", ConcurrencyLimit: 3),
            new JobRequest("test.keyed", $"ws_{i % 3}"),
        }).ToList();
        await q.EnqueueManyAsync(jobs);
        var running = new ConcurrentDictionary<string, int>();
        var peak = new ConcurrentDictionary<string, int>();
        var dbPeak = new ConcurrentDictionary<string, long>();
        var done = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 4), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (claimer, ct) =>
        {
            var idle = 0;
            while (Volatile.Read(ref done) < jobs.Count && idle < 400)
            {
                var claimed = await q.Queue.ClaimAsync($"claimer-{claimer}", 4, TimeSpan.FromSeconds(30), ct);
                if (claimed.Count == 0)
                {
                    idle++;
                    await Task.Delay(5, ct);
                    continue;
                }
                idle = 0;
                foreach (var key in claimed.Select(j => j.ConcurrencyKey).OfType<string>())
                {
                    var now = running.AddOrUpdate(key, 1, (_, n) => n + 1);
                    peak.AddOrUpdate(key, now, (_, p) => Math.Max(p, now));
                }
                await using (var connection = await q.Db.Service.OpenConnectionAsync(ct))
                {
                    foreach (var (key, n) in await connection.QueryAsync<(string, long)>(
                        "SELECT concurrency_key, count(*) FROM jobs WHERE state = 'running' AND concurrency_key IS NOT NULL GROUP BY 1"))
                    {
                        dbPeak.AddOrUpdate(key, n, (_, p) => Math.Max(p, n));
                    }
                }
                await Task.Delay(Random.Shared.Next(2, 10), ct);
                foreach (var key in claimed.Select(j => j.ConcurrencyKey).OfType<string>())
                {
                    running.AddOrUpdate(key, 0, (_, n) => n - 1); // before the delete commits: never undercounts
                }
                Assert.Equal(claimed.Count, (await q.Queue.CompleteManyAsync(claimed, ct)).Count);
                Interlocked.Add(ref done, claimed.Count);
            }
        });
        Assert.Equal(jobs.Count, done);
        Assert.Equal(1, peak["connector-1"]);
        Assert.InRange(peak["connector-2"], 1, 3);
        Assert.Equal(1, dbPeak["connector-1"]);
        Assert.InRange(dbPeak["connector-2"], 1, 3);
    }

    [Fact]
    public async Task The_api_role_enqueues_only_for_its_own_workspace_and_cannot_read_jobs()
    {
        await using var q = await QuietQueueAsync();
        await using (var request = new RequestDb(q.Db))
        {
            await request.SetWorkspaceAsync("ws_mine", "member", CancellationToken.None);
            await JobQueue.EnqueueAsync(request, new JobRequest("test.api", "ws_mine", new { execution_id = Guid.NewGuid() }), CancellationToken.None);
            await request.CommitAsync(CancellationToken.None);
        }
        Assert.Equal(1, await q.ScalarAsync<long>("SELECT count(*) FROM jobs WHERE workspace_id = 'ws_mine' AND kind = 'test.api'"));

        foreach (var other in new[] { "ws_other", null })
        {
            await using var request = new RequestDb(q.Db);
            await request.SetWorkspaceAsync("ws_mine", "owner", CancellationToken.None);
            var denied = await Assert.ThrowsAsync<PostgresException>(() => JobQueue.EnqueueAsync(request, new JobRequest("test.api", other), CancellationToken.None));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        }
        foreach (var sql in new[] { "SELECT count(*) FROM jobs", "UPDATE jobs SET state = 'dead'", "DELETE FROM jobs" })
        {
            await using var request = new RequestDb(q.Db);
            await request.SetWorkspaceAsync("ws_mine", "owner", CancellationToken.None);
            var denied = await Assert.ThrowsAsync<PostgresException>(() => request.ExecuteAsync(sql, null, CancellationToken.None));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        }
        Assert.Equal("available", await q.ScalarAsync<string>("SELECT state FROM jobs"));
    }
}

/// <summary>Operators' endpoints on the test server's database: platform admins only, read and changed on the service role.</summary>
[Collection(ServerCollection.Name)]
public sealed class JobsAdminApiTests(PlugboardServer server)
{
    private async Task<Guid> InsertAsync(string kind, string state, string runAt = "now()")
    {
        var id = Guid.CreateVersion7();
        var attempts = state == "dead" ? 3 : 0;
        await server.OwnerExecuteAsync(
            $"""
            INSERT INTO jobs (id, kind, workspace_id, state, run_at, attempts, max_attempts, last_error, finished_at)
            VALUES (@id, @kind, 'ws_ops', @state, {runAt}, @attempts, 3, CASE WHEN @state = 'dead' THEN 'boom' END, CASE WHEN @state = 'dead' THEN now() END)
            """, new { id, kind, state, attempts });
        return id;
    }

    [Fact]
    public async Task Platform_admins_see_stats_list_retry_and_discard_dead_jobs_and_others_are_refused()
    {
        var kind = "test.ops." + Guid.NewGuid().ToString("N")[..8];
        var deadToRetry = await InsertAsync(kind, "dead");
        var deadToDiscard = await InsertAsync(kind, "dead");
        await InsertAsync(kind, "available", "now() - interval '1 minute'");
        await InsertAsync(kind, "available", "now() + interval '1 hour'");
        var admin = await server.NewUserAsync("admin");
        var developer = await server.NewUserAsync("developer");
        var plain = await server.NewUserAsync();

        foreach (var actor in new[] { plain, developer })
        {
            await (await actor.Http.GetAsync("/v1/admin/jobs")).AssertProblemAsync(403, "forbidden");
            await (await actor.Http.GetAsync("/v1/admin/jobs/dead")).AssertProblemAsync(403, "forbidden");
            await (await actor.Http.PostAsync($"/v1/admin/jobs/{deadToRetry}/retry", null)).AssertProblemAsync(403, "forbidden");
            await (await actor.Http.DeleteAsync($"/v1/admin/jobs/{deadToDiscard}")).AssertProblemAsync(403, "forbidden");
        }
        Assert.Equal(2, await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE kind = @kind AND state = 'dead'", new { kind }));

        var stats = await (await admin.Http.GetAsync("/v1/admin/jobs")).AssertStatusAsync(200);
        var mine = stats.GetProperty("kinds").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == kind);
        Assert.Equal((1, 1, 0, 0, 2), (mine.GetProperty("queued").GetInt64(), mine.GetProperty("scheduled").GetInt64(), mine.GetProperty("running").GetInt64(),
            mine.GetProperty("retrying").GetInt64(), mine.GetProperty("dead").GetInt64()));
        Assert.InRange(mine.GetProperty("oldest_queued_seconds").GetDouble(), 55, 3600);
        Assert.True(stats.GetProperty("dead").GetInt64() >= 2);

        // Page through dead letters one at a time until both of ours have been seen.
        var seen = new List<Guid>();
        string? cursor = null;
        do
        {
            var page = await (await admin.Http.GetAsync("/v1/admin/jobs/dead?limit=1" + (cursor is null ? "" : "&cursor=" + cursor))).AssertStatusAsync(200);
            foreach (var item in page.GetProperty("items").EnumerateArray().Where(i => i.GetProperty("kind").GetString() == kind))
            {
                Assert.Equal("boom", item.GetProperty("last_error").GetString());
                seen.Add(item.GetProperty("id").GetGuid());
            }
            cursor = page.GetProperty("next_cursor").GetString();
        }
        while (cursor is not null);
        Assert.Equal(new[] { deadToDiscard, deadToRetry }, seen); // newest first

        await (await admin.Http.PostAsync($"/v1/admin/jobs/{deadToRetry}/retry", null)).AssertStatusAsync(204);
        Assert.Equal("available|0", await server.OwnerScalarAsync<string>("SELECT state || '|' || attempts FROM jobs WHERE id = @deadToRetry", new { deadToRetry }));
        await (await admin.Http.PostAsync($"/v1/admin/jobs/{deadToRetry}/retry", null)).AssertProblemAsync(409, "conflict");
        await (await admin.Http.DeleteAsync($"/v1/admin/jobs/{deadToRetry}")).AssertProblemAsync(409, "conflict");

        await (await admin.Http.DeleteAsync($"/v1/admin/jobs/{deadToDiscard}")).AssertStatusAsync(204);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE id = @deadToDiscard", new { deadToDiscard }));
        await (await admin.Http.DeleteAsync($"/v1/admin/jobs/{deadToDiscard}")).AssertProblemAsync(404, "not-found");
        await (await admin.Http.PostAsync($"/v1/admin/jobs/{Guid.NewGuid()}/retry", null)).AssertProblemAsync(404, "not-found");
        Assert.Equal(2, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM audit_log WHERE action IN ('job.retried', 'job.discarded') AND target_id IN (@a, @b)", new { a = deadToRetry.ToString(), b = deadToDiscard.ToString() }));

        await server.OwnerExecuteAsync("DELETE FROM jobs WHERE kind = @kind", new { kind });
    }
}
