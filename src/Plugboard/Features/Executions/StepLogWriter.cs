using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Running;

namespace Plugboard.Features.Executions;

/// <summary>
/// The live step log: the runner hands each redacted entry over without waiting, and while entries are pending a timer
/// appends them to the execution row every 200 ms, so the stream shows a step while the run goes on (even one that
/// waits on a slow request). A run that ends before the first tick writes nothing here (the completion writes the
/// whole log), and no timer exists until a first step is logged. Best effort: a failed write (a database blip) is
/// retried at the next tick and never fails the run.
/// </summary>
internal sealed class StepLogWriter : IRunObserver, IAsyncDisposable
{
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);

    private readonly Db _db;
    private readonly string _workspaceId;
    private readonly Guid _executionId;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<StepLogEntry> _pending = [];
    private ITimer? _timer;
    private Task _flushing = Task.CompletedTask;
    private bool _disposed;

    public StepLogWriter(Db db, string workspaceId, Guid executionId, ILogger logger)
    {
        _db = db;
        _workspaceId = workspaceId;
        _executionId = executionId;
        _logger = logger;
    }

    public ValueTask OnStepAsync(StepLogEntry entry, CancellationToken ct)
    {
        lock (_gate)
        {
            _pending.Add(entry);
            if (_timer is null && !_disposed)
            {
                _timer = TimeProvider.System.CreateTimer(_ => Tick(), null, FlushInterval, FlushInterval);
            }
        }
        return ValueTask.CompletedTask;
    }

    private void Tick()
    {
        lock (_gate)
        {
            if (_disposed || !_flushing.IsCompleted || _pending.Count == 0)
            {
                return;
            }
            // Started here but run on the pool, so the write never happens under the lock that OnStepAsync takes.
            _flushing = Task.Run(FlushAsync);
        }
    }

    private async Task FlushAsync()
    {
        StepLogEntry[] batch;
        lock (_gate)
        {
            if (_pending.Count == 0)
            {
                return;
            }
            batch = [.. _pending];
        }
        try
        {
            await using var connection = await _db.Service.OpenConnectionAsync();
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE connector_executions SET steps_log = steps_log || @entries::jsonb WHERE workspace_id = @workspaceId AND id = @executionId AND finished_at IS NULL",
                new { entries = Jsonb.Text(new JsonArray([.. batch.Select(ToJson)])), workspaceId = _workspaceId, executionId = _executionId }));
            lock (_gate)
            {
                _pending.RemoveRange(0, batch.Length);
            }
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            _logger.LogWarning("Execution {ExecutionId}: live step log not written this time ({ExceptionType}); retrying", _executionId, e.GetType().Name);
        }
    }

    /// <summary>Stops the timer and waits for a write in flight; what is still pending is in the run's full log, which the completion writes.</summary>
    public async ValueTask DisposeAsync()
    {
        ITimer? timer;
        Task flushing;
        lock (_gate)
        {
            _disposed = true;
            timer = _timer;
            flushing = _flushing;
        }
        if (timer is not null)
        {
            await timer.DisposeAsync();
        }
        await flushing;
    }

    public static JsonObject ToJson(StepLogEntry e) => new()
    {
        ["step_id"] = e.StepId,
        ["method"] = e.Method,
        ["url"] = e.Url,
        ["status"] = e.Status,
        ["duration_ms"] = e.DurationMs,
        ["bytes"] = e.Bytes,
        ["attempt"] = e.Attempt,
        ["page"] = e.Page,
        ["item"] = e.Item,
        ["skipped"] = e.Skipped,
        ["error"] = e.Error,
        ["response_body"] = e.ResponseBody,
        ["at"] = e.At,
    };
}
