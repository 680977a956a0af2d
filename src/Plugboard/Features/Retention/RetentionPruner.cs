using Dapper;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Features.Retention;

/// <summary>How long finished work is kept (0 keeps it for ever), how often it is pruned, and how many rows a batch deletes.</summary>
public sealed record RetentionOptions(int ExecutionDays, int SyncLogDays, int WebhookEventDays, int JobDays, int IdempotencyHours, TimeSpan Interval, int BatchSize)
{
    public static RetentionOptions FromConfiguration(IConfiguration configuration) => new(
        Settings.Int(configuration, "PLUGBOARD_RETENTION_EXECUTIONS_DAYS", 30, 0, 36_500),
        Settings.Int(configuration, "PLUGBOARD_RETENTION_SYNC_LOGS_DAYS", 90, 0, 36_500),
        Settings.Int(configuration, "PLUGBOARD_RETENTION_WEBHOOK_EVENTS_DAYS", 30, 0, 36_500),
        Settings.Int(configuration, "PLUGBOARD_RETENTION_JOBS_DAYS", 14, 0, 36_500),
        Settings.Int(configuration, "PLUGBOARD_RETENTION_IDEMPOTENCY_HOURS", 48, 0, 876_000),
        TimeSpan.FromMinutes(Settings.Number(configuration, "PLUGBOARD_RETENTION_INTERVAL_MINUTES", 60, 0.01, 10_080)),
        Settings.Int(configuration, "PLUGBOARD_RETENTION_BATCH", 500, 1, 100_000));
}

/// <summary>
/// Deletes finished work past its retention: executions (their step logs are part of the row), sync logs, processed
/// webhook events, idempotency keys, dead or cancelled jobs, OAuth attempts and dashboard sessions a day after they expired. Each batch is
/// its own short transaction that takes only rows nobody holds (FOR UPDATE SKIP LOCKED), found through an index, so
/// pruning never waits on — or blocks — normal work. One process prunes at a time (an advisory lock).
/// </summary>
public sealed class RetentionPruner(Db db, RetentionOptions options, ILogger<RetentionPruner> logger)
{
    private const long AdvisoryLock = 0x706c_7567_7072_756e; // "plugprun"

    private sealed record Rule(string Name, string Table, string Key, string Where, string Age);

    private IEnumerable<Rule> Rules()
    {
        if (options.ExecutionDays > 0)
        {
            yield return new("executions", "connector_executions", "workspace_id, id", "status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND finished_at < now() - @age::interval", $"{options.ExecutionDays} days");
        }
        if (options.SyncLogDays > 0)
        {
            yield return new("sync_logs", "connector_sync_logs", "workspace_id, id", "status IN ('completed', 'failed', 'cancelled') AND completed_at < now() - @age::interval", $"{options.SyncLogDays} days");
        }
        if (options.WebhookEventDays > 0)
        {
            yield return new("webhook_events", "connector_webhook_events", "workspace_id, id", "processed AND processed_at < now() - @age::interval", $"{options.WebhookEventDays} days");
        }
        if (options.IdempotencyHours > 0)
        {
            yield return new("idempotency_keys", "idempotency_keys", "user_id, key", "created_at < now() - @age::interval", $"{options.IdempotencyHours} hours");
        }
        if (options.JobDays > 0)
        {
            yield return new("jobs", "jobs", "id", "state IN ('dead', 'cancelled') AND finished_at < now() - @age::interval", $"{options.JobDays} days");
        }
        yield return new("oauth_authorizations", "oauth_authorizations", "workspace_id, id", "expires_at < now() - @age::interval", "1 day");
        yield return new("dashboard_sessions", "dashboard_sessions", "id", "expires_at < now() - @age::interval", "1 day");
    }

    /// <summary>Prunes every kind once; null when another process holds the pruning lock.</summary>
    public async Task<IReadOnlyDictionary<string, long>?> PruneAsync(CancellationToken ct)
    {
        // The pruning lock is a session lock held across many committed batches, so the connection is not pooled (the
        // pools keep no session state): closing it ends the session and the lock with it, whatever happens.
        await using var connection = db.CreateSessionConnection("plugboard-retention");
        await connection.OpenAsync(ct);
        if (!await connection.ExecuteScalarAsync<bool>(new CommandDefinition("SELECT pg_try_advisory_lock(@AdvisoryLock)", new { AdvisoryLock }, cancellationToken: ct)))
        {
            return null;
        }
        // The lock ends with the session: closing the connection (at the end of this method) releases it.
        var deleted = new Dictionary<string, long>();
        foreach (var rule in Rules())
        {
            var sql = $"""
                DELETE FROM {rule.Table} WHERE ({rule.Key}) IN (
                    SELECT {rule.Key} FROM {rule.Table} WHERE {rule.Where} LIMIT @batch FOR UPDATE SKIP LOCKED)
                """;
            long total = 0;
            int batch;
            do
            {
                batch = await connection.ExecuteAsync(new CommandDefinition(sql, new { age = rule.Age, batch = options.BatchSize }, cancellationToken: ct));
                total += batch;
            }
            while (batch == options.BatchSize);
            deleted[rule.Name] = total;
        }
        if (deleted.Values.Any(n => n > 0))
        {
            logger.LogInformation("Retention pruned {Deleted}", string.Join(", ", deleted.Where(d => d.Value > 0).Select(d => $"{d.Value} {d.Key}")));
        }
        return deleted;
    }
}
