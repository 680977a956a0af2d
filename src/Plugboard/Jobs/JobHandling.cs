using Npgsql;

namespace Plugboard.Jobs;

/// <summary>
/// Runs the jobs of one kind. Register with <c>services.AddJobHandler&lt;T&gt;()</c> (a singleton). A handler that writes
/// results to Plugboard's tables does so in one transaction that also calls <see cref="JobContext.CompleteAsync"/>,
/// committing only when it returns true; a handler that returns without completing is completed by the worker.
/// Throw <see cref="PermanentJobFailure"/> when retrying cannot help, <see cref="RetryJobLater"/> to choose the delay;
/// any other exception is retried with backoff. The token is cancelled when the lease is lost or on hard shutdown.
/// </summary>
public interface IJobHandler
{
    string Kind { get; }

    Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct);
}

/// <summary>What a handler gets besides its job: the queue, service-role connections, and completion in its own transaction.</summary>
public sealed class JobContext(JobQueue queue, ClaimedJob job)
{
    public JobQueue Queue { get; } = queue;

    public ClaimedJob Job { get; } = job;

    /// <summary>True once the handler has tried to complete the job itself.</summary>
    public bool CompletionAttempted { get; private set; }

    /// <summary>A pooled connection on the service role (background work sees every workspace: filter by the job's workspace).</summary>
    public ValueTask<NpgsqlConnection> OpenConnectionAsync(CancellationToken ct) => Queue.Db.Service.OpenConnectionAsync(ct);

    /// <summary>
    /// Deletes the job in the given transaction if this worker still holds its lease. When it returns false the job
    /// belongs to another attempt: roll the transaction back.
    /// </summary>
    public Task<bool> CompleteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken ct)
    {
        CompletionAttempted = true;
        return JobQueue.CompleteAsync(connection, transaction, Job, ct);
    }

    /// <summary>
    /// Completes the job and applies the handler's final writes in one statement, one round trip: each effect is a
    /// data-modifying statement that must contain <c>{lease_held}</c> in its WHERE clause, which is true only if this
    /// worker still holds the lease (the job's row is deleted by the same statement). Returns false, having changed
    /// nothing, when the lease was lost.
    /// </summary>
    public async Task<bool> CompleteWithAsync(NpgsqlConnection connection, IReadOnlyList<string> effects, object parameters, CancellationToken ct)
    {
        CompletionAttempted = true;
        var sql = new System.Text.StringBuilder(
            $"WITH done AS (DELETE FROM jobs WHERE {JobQueue.LeaseHeld} RETURNING 1)");
        for (var i = 0; i < effects.Count; i++)
        {
            sql.Append($",\neffect{i} AS ({effects[i].Replace("{lease_held}", "EXISTS (SELECT FROM done)", StringComparison.Ordinal)})");
        }
        sql.Append("\nSELECT count(*)::int FROM done");
        var arguments = new Dapper.DynamicParameters(parameters);
        arguments.Add("JobId", Job.Id);
        arguments.Add("JobAttempt", Job.Attempt);
        arguments.Add("JobWorker", Job.WorkerId);
        var completed = await Dapper.SqlMapper.ExecuteScalarAsync<int>(connection, new Dapper.CommandDefinition(sql.ToString(), arguments, cancellationToken: ct)) == 1;
        if (completed)
        {
            JobMetrics.Completed.Add(1);
        }
        return completed;
    }
}

/// <summary>Worker settings (configuration keys PLUGBOARD_WORKER_*).</summary>
public sealed record JobWorkerOptions
{
    public int Concurrency { get; init; } = 20;

    /// <summary>
    /// Jobs claimed ahead of free slots (their leases are renewed while they wait), so a slot that frees starts its next
    /// job at once instead of waiting for a claim round trip. Claims get larger and rarer.
    /// </summary>
    public int Prefetch { get; init; } = 10;
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a saturated worker waits for more free slots before claiming a small batch.</summary>
    public TimeSpan BatchWait { get; init; } = TimeSpan.FromMilliseconds(5);

    public TimeSpan RenewInterval => Lease / 3;

    public static JobWorkerOptions FromConfiguration(IConfiguration configuration)
    {
        var defaults = new JobWorkerOptions();
        var concurrency = Hosting.Settings.Int(configuration, "PLUGBOARD_WORKER_CONCURRENCY", defaults.Concurrency, 1, 1000);
        return new JobWorkerOptions
        {
            Concurrency = concurrency,
            Prefetch = Hosting.Settings.Int(configuration, "PLUGBOARD_WORKER_PREFETCH", Math.Max(1, concurrency / 2), 0, 1000),
            PollInterval = TimeSpan.FromSeconds(Hosting.Settings.Number(configuration, "PLUGBOARD_WORKER_POLL_SECONDS", defaults.PollInterval.TotalSeconds, 0.1, 300)),
            Lease = TimeSpan.FromSeconds(Hosting.Settings.Number(configuration, "PLUGBOARD_WORKER_LEASE_SECONDS", defaults.Lease.TotalSeconds, 1, 3600)),
            ShutdownTimeout = TimeSpan.FromSeconds(Hosting.Settings.Number(configuration, "PLUGBOARD_WORKER_SHUTDOWN_SECONDS", defaults.ShutdownTimeout.TotalSeconds, 0, 3600)),
        };
    }
}
