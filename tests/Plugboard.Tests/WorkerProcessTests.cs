using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using Plugboard.Data;
using Plugboard.Features.Executions;
using Plugboard.Jobs;
using Plugboard.Security;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Real `plugboard worker` processes against one database: a worker killed with SIGKILL mid-execution leaves nothing
/// stuck, and two workers sharing the queue never run an execution twice.
/// </summary>
public sealed class WorkerProcessTests : IAsyncLifetime
{
    private DatabaseSettings _settings = null!;
    private KeyRing _keys = null!;
    private Db _db = null!;
    private readonly List<Process> _processes = [];
    private readonly ConcurrentDictionary<int, ConcurrentQueue<string>> _output = new();

    public async Task InitializeAsync()
    {
        _settings = await PlugboardServer.CreateDatabaseAsync("pbwork_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        Migrator.Up(_settings);
        _keys = KeyRing.Generate();
        _db = new Db(_settings);
    }

    public async Task DisposeAsync()
    {
        foreach (var process in _processes.Where(p => !p.HasExited))
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        await _db.DisposeAsync();
    }

    /// <summary>A worker process; the crash test wants a short lease (a killed worker's job is taken over soon), the
    /// sharing test the default one (on a loaded machine a 2 s lease can expire between renewals).</summary>
    private Process StartWorker(int index, int leaseSeconds = 2, string schedulerPollSeconds = "86400")
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "plugboard.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("worker");
        start.Environment["DATABASE_URL"] = _settings.OwnerConnectionString;
        start.Environment["PLUGBOARD_DB_ROLE_PASSWORD"] = _settings.RolePassword ?? "";
        start.Environment["PLUGBOARD_KEYS"] = _keys.ToJson();
        start.Environment["PLUGBOARD_OUTBOUND_ALLOW"] = "127.0.0.1/32";
        start.Environment["PLUGBOARD_WORKER_LEASE_SECONDS"] = leaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["PLUGBOARD_SCHEDULER_POLL_SECONDS"] = schedulerPollSeconds;
        start.Environment["PLUGBOARD_HOME"] = Directory.CreateTempSubdirectory("plugboard-worker").FullName;
        var process = Process.Start(start)!;
        var lines = _output.GetOrAdd(index, _ => new ConcurrentQueue<string>());
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add(process);
        return process;
    }

    private async Task<(string WorkspaceId, Guid ConnectorId)> ConnectorAsync(string baseUrl)
    {
        var workspaceId = "ws_proc" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        var connectorId = Guid.CreateVersion7();
        var manifest = JsonSerializer.Serialize(new
        {
            version = 1,
            base_url = baseUrl,
            inputs = new { n = new { type = "integer", required = true } },
            steps = new[] { new { id = "call", request = new { method = "GET", path = "/call", query = new { n = "{{ inputs.n }}" } } } },
        });
        await using var connection = await _db.Service.OpenConnectionAsync();
        await connection.ExecuteAsync(
            "INSERT INTO workspaces (id, name) VALUES (@workspaceId, 'procs'); INSERT INTO connectors (workspace_id, id, name, manifest, max_concurrency) VALUES (@workspaceId, @connectorId, 'c', @manifest::jsonb, 100)",
            new { workspaceId, connectorId, manifest });
        return (workspaceId, connectorId);
    }

    private async Task<Guid> QueueAsync(string workspaceId, Guid connectorId, int n)
    {
        var id = Guid.CreateVersion7();
        await using var connection = await _db.Service.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await connection.ExecuteAsync("INSERT INTO connector_executions (workspace_id, id, connector_id, inputs) VALUES (@workspaceId, @id, @connectorId, @inputs::jsonb)",
            new { workspaceId, id, connectorId, inputs = $"{{\"n\": {n}}}" }, tx);
        await JobQueue.EnqueueAsync(connection, tx, ExecutionJob.Request(workspaceId, connectorId, id, 100), CancellationToken.None);
        await tx.CommitAsync();
        return id;
    }

    private async Task<Dictionary<string, long>> StatusesAsync()
    {
        await using var connection = await _db.Service.OpenConnectionAsync();
        return (await connection.QueryAsync<(string Status, long Count)>("SELECT status, count(*) FROM connector_executions GROUP BY status")).ToDictionary(r => r.Status, r => r.Count);
    }

    private async Task WaitAsync(Func<Task<bool>> done, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, describe() + "\n" + string.Join("\n", _output.SelectMany(o => o.Value.Select(l => $"[{o.Key}] {l}")).TakeLast(40)));
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_worker_killed_mid_execution_leaves_nothing_stuck_and_effects_apply_once()
    {
        var calls = 0;
        var firstCall = new TaskCompletionSource();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/call", async (HttpContext http) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                firstCall.TrySetResult();
                await Task.Delay(TimeSpan.FromMinutes(5), http.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            return Results.Json(new { ok = true });
        }));
        var (workspaceId, connectorId) = await ConnectorAsync(stub.Url);
        var executionId = await QueueAsync(workspaceId, connectorId, 1);
        var doomed = StartWorker(0);
        await firstCall.Task.WaitAsync(TimeSpan.FromSeconds(60));
        doomed.Kill(entireProcessTree: true); // SIGKILL: no cleanup, no lease release
        await doomed.WaitForExitAsync();
        StartWorker(1);
        await WaitAsync(async () => (await StatusesAsync()).GetValueOrDefault("succeeded") == 1, TimeSpan.FromSeconds(60), () => $"calls={calls}");
        await using var connection = await _db.Service.OpenConnectionAsync();
        var execution = await connection.QuerySingleAsync<(string Status, int Attempts, string StepsLog)>(
            "SELECT status, attempts, steps_log::text FROM connector_executions WHERE id = @executionId", new { executionId });
        Assert.Equal("succeeded", execution.Status);
        Assert.Equal(2, execution.Attempts);
        Assert.Equal(2, calls);
        Assert.Single(JsonDocument.Parse(execution.StepsLog).RootElement.EnumerateArray());
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM jobs"));
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("SELECT error_count FROM connectors WHERE id = @connectorId", new { connectorId }));
    }

    [Fact]
    public async Task Two_worker_processes_share_one_queue_without_running_anything_twice()
    {
        var calls = new ConcurrentDictionary<int, int>();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/call", (int n) =>
        {
            calls.AddOrUpdate(n, 1, (_, c) => c + 1);
            return Results.Json(new { ok = true });
        }));
        var (workspaceId, connectorId) = await ConnectorAsync(stub.Url);
        int[] pids = [StartWorker(0, leaseSeconds: 30).Id, StartWorker(1, leaseSeconds: 30).Id];
        // Both have started (each beats once it is up), so neither can drain the queue before the other exists.
        await WaitAsync(async () =>
        {
            await using var connection = await _db.Service.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<long>("SELECT count(DISTINCT pid) FROM worker_heartbeats WHERE pid = ANY(@pids)", new { pids }) == 2;
        }, TimeSpan.FromSeconds(60), () => "both workers did not start");
        const int total = 200;
        for (var n = 0; n < total; n++)
        {
            await QueueAsync(workspaceId, connectorId, n);
        }
        await WaitAsync(async () => (await StatusesAsync()).GetValueOrDefault("succeeded") == total, TimeSpan.FromSeconds(90),
            () => JsonSerializer.Serialize(StatusesAsync().Result));
        Assert.Equal(total, calls.Count);
        Assert.All(calls, c => Assert.Equal(1, c.Value));
        var perWorker = _output.ToDictionary(o => o.Key, o => o.Value.Count(l => l.Contains("succeeded in", StringComparison.Ordinal)));
        Assert.Equal(total, perWorker.Values.Sum());
        Assert.All(perWorker.Values, count => Assert.True(count > 0, "both workers should have run executions: " + JsonSerializer.Serialize(perWorker)));
    }

    [Fact]
    public async Task The_schedulers_of_two_worker_processes_start_each_due_sync_once_and_never_two_of_one_connector()
    {
        var concurrent = new ConcurrentDictionary<string, int>();
        var overlaps = 0;
        await using var stub = await Stub.StartAsync(app => app.MapGet("/items/{connector}", async (string connector) =>
        {
            if (concurrent.AddOrUpdate(connector, 1, (_, c) => c + 1) > 1)
            {
                Interlocked.Increment(ref overlaps);
            }
            await Task.Delay(100);
            concurrent.AddOrUpdate(connector, 0, (_, c) => c - 1);
            return Results.Json(new { items = new[] { new { id = 1, text = "one" }, new { id = 2, text = "two" } } });
        }));
        var workspaceId = "ws_sched" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        var connectors = Enumerable.Range(0, 8).Select(_ => Guid.CreateVersion7()).ToList();
        await using (var connection = await _db.Service.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("INSERT INTO workspaces (id, name) VALUES (@workspaceId, 'sched')", new { workspaceId });
            foreach (var id in connectors)
            {
                var manifest = JsonSerializer.Serialize(new
                {
                    version = 1,
                    base_url = stub.Url,
                    steps = new[] { new { id = "list", request = new { method = "GET", path = $"/items/{id}" }, extract = new { items = "$.items[*]" } } },
                    streams = new[] { new { name = "items", records = "steps.list.items", primary_key = "{{ record.id }}", document = new { content = "{{ record.text }}" } } },
                });
                // Due a few seconds from now: both schedulers poll (every 0.2 s) before and as it falls due.
                await connection.ExecuteAsync(
                    """
                    INSERT INTO connectors (workspace_id, id, name, manifest, sync_frequency, next_sync_at)
                    VALUES (@workspaceId, @id, 'c-' || @id, @manifest::jsonb, 'hourly', now() + interval '4 seconds')
                    """, new { workspaceId, id, manifest });
            }
        }
        StartWorker(0, leaseSeconds: 30, schedulerPollSeconds: "0.2");
        StartWorker(1, leaseSeconds: 30, schedulerPollSeconds: "0.2");
        async Task<long> Completed()
        {
            await using var connection = await _db.Service.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @workspaceId AND status = 'completed'", new { workspaceId });
        }
        await WaitAsync(async () => await Completed() == connectors.Count, TimeSpan.FromSeconds(90), () => "the due syncs did not all complete");
        await Task.Delay(1500); // several more polls of both schedulers: nothing more may start
        await using var check = await _db.Service.OpenConnectionAsync();
        var perConnector = (await check.QueryAsync<(Guid ConnectorId, long Syncs, string Triggers)>(
            "SELECT connector_id, count(*), string_agg(DISTINCT trigger, ',') FROM connector_sync_logs WHERE workspace_id = @workspaceId GROUP BY connector_id",
            new { workspaceId })).ToList();
        Assert.Equal(connectors.Count, perConnector.Count);
        Assert.All(perConnector, c => Assert.Equal((1L, "schedule"), (c.Syncs, c.Triggers)));
        Assert.Equal(0, overlaps);
        Assert.Equal(connectors.Count * 2, await check.ExecuteScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @workspaceId", new { workspaceId }));
        Assert.True(await check.ExecuteScalarAsync<bool>(
            "SELECT bool_and(next_sync_at > now() + interval '50 minutes') FROM connectors WHERE workspace_id = @workspaceId", new { workspaceId }));
    }
}
