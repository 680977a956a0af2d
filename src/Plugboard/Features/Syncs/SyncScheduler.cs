using Dapper;
using Plugboard.Data;
using Plugboard.Features.Retention;
using Plugboard.Hosting;

namespace Plugboard.Features.Syncs;

/// <summary>How the scheduler and syncs run (PLUGBOARD_SCHEDULER_POLL_SECONDS, PLUGBOARD_SYNC_CATCHUP_SECONDS, PLUGBOARD_SYNC_MAX_FAILURES,
/// PLUGBOARD_SYNC_CHECKPOINT_RECORDS).</summary>
public sealed record SyncSchedulerOptions(TimeSpan Poll, TimeSpan CatchUpWindow, int MaxConsecutiveFailures, int CheckpointRecords = 1000)
{
    public static SyncSchedulerOptions FromConfiguration(IConfiguration configuration) => new(
        TimeSpan.FromSeconds(Settings.Number(configuration, "PLUGBOARD_SCHEDULER_POLL_SECONDS", 5, 0.1, 86_400)),
        TimeSpan.FromSeconds(Settings.Number(configuration, "PLUGBOARD_SYNC_CATCHUP_SECONDS", 300, 0, 86_400)),
        Settings.Int(configuration, "PLUGBOARD_SYNC_MAX_FAILURES", 5, 1, 1000),
        Settings.Int(configuration, "PLUGBOARD_SYNC_CHECKPOINT_RECORDS", 1000, 1, 1_000_000));

    /// <summary>A start later than this is a missed one (downtime), caught up spread over the window rather than at once.</summary>
    public TimeSpan MissedAfter => TimeSpan.FromSeconds(Math.Clamp(3 * Poll.TotalSeconds, 60, 3600));
}

public sealed record SchedulerTick(int Started, int AlreadyRunning, int Spread, int Abandoned);

/// <summary>
/// Starts due syncs, on every worker process. Each tick takes the due connectors row-locked with SKIP LOCKED, starts
/// a sync for each and moves its next_sync_at on in the same transaction, so a due connector starts exactly once
/// whatever the number of schedulers; a connector whose previous sync still runs is not started again (its start is
/// skipped, not queued). Starts missed while no scheduler ran (downtime) are not made up one by one: each such
/// connector is rescheduled at a random point of the catch-up window, so a backlog starts spread out, not in a burst.
/// </summary>
public sealed class SyncScheduler(Db db, SyncSchedulerOptions options, RetentionPruner pruner, RetentionOptions retention, ILogger<SyncScheduler> logger)
    : BackgroundService
{
    private const int Batch = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Poll);
        var nextPrune = DateTime.UtcNow;
        var pruning = Task.CompletedTask;
        do
        {
            try
            {
                await TickAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Starting due syncs failed; the scheduler tries again at its next tick");
            }
            if (DateTime.UtcNow >= nextPrune && pruning.IsCompleted)
            {
                // Beside the ticks, not in them: a large first backlog never holds up due syncs.
                nextPrune = DateTime.UtcNow + retention.Interval;
                pruning = Task.Run(async () =>
                {
                    try
                    {
                        await pruner.PruneAsync(stoppingToken);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        logger.LogWarning(e, "Pruning by retention failed; it runs again in {Minutes} minutes", retention.Interval.TotalMinutes);
                    }
                }, stoppingToken);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private sealed record Due(string WorkspaceId, Guid Id, string SyncFrequency, string SyncTimezone, DateTime NextSyncAt);

    public async Task<SchedulerTick> TickAsync(CancellationToken ct)
    {
        int started = 0, running = 0, spread = 0;
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        for (var round = 0; round < 10; round++)
        {
            await using var tx = await connection.BeginTransactionAsync(ct);
            // The database's clock decides, for picking and for the next start alike (the process's may differ).
            var now = new DateTimeOffset(await connection.ExecuteScalarAsync<DateTime>(new CommandDefinition("SELECT now()", transaction: tx, cancellationToken: ct)), TimeSpan.Zero);
            var due = (await connection.QueryAsync<Due>(new CommandDefinition(
                """
                SELECT workspace_id, id, sync_frequency, sync_timezone, next_sync_at
                  FROM connectors
                 WHERE next_sync_at <= now() AND is_active AND sync_paused_at IS NULL
                 ORDER BY next_sync_at
                 LIMIT @Batch
                   FOR UPDATE SKIP LOCKED
                """, new { Batch }, tx, cancellationToken: ct))).ToList();
            foreach (var connector in due)
            {
                DateTimeOffset? next;
                if (!SyncSchedule.TryParse(connector.SyncFrequency, connector.SyncTimezone, out var schedule, out _))
                {
                    next = null; // refused by the API since; nothing to run on
                }
                else if (now - new DateTimeOffset(connector.NextSyncAt, TimeSpan.Zero) > options.MissedAfter)
                {
                    next = now + options.CatchUpWindow * Random.Shared.NextDouble();
                    spread++;
                }
                else
                {
                    var (isStarted, _) = await SyncJob.StartAsync(connection, tx, connector.WorkspaceId, connector.Id, "schedule", false, ct);
                    if (isStarted)
                    {
                        started++;
                    }
                    else
                    {
                        running++;
                    }
                    next = schedule.After(new DateTimeOffset(connector.NextSyncAt, TimeSpan.Zero), now);
                }
                await connection.ExecuteAsync(new CommandDefinition(
                    "UPDATE connectors SET next_sync_at = @next WHERE workspace_id = @WorkspaceId AND id = @Id",
                    new { next, connector.WorkspaceId, connector.Id }, tx, cancellationToken: ct));
            }
            await tx.CommitAsync(ct);
            if (due.Count < Batch)
            {
                break;
            }
        }
        var abandoned = await AbandonOrphanedAsync(connection, ct);
        return new SchedulerTick(started, running, spread, abandoned);
    }

    /// <summary>
    /// A sync whose job is gone (a worker stopped during its last attempt, or an operator discarded it) would block its
    /// connector for ever: it is failed, with what to do, and the connector can sync again.
    /// </summary>
    private static Task<int> AbandonOrphanedAsync(Npgsql.NpgsqlConnection connection, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE connector_sync_logs l
               SET status = 'failed', completed_at = now(),
                   error_message = 'The sync stopped without finishing: its job ended (the worker stopped during its last attempt, or the job was discarded). Start it again.'
             WHERE l.status IN ('queued', 'running') AND l.created_at < now() - interval '1 minute'
               AND NOT EXISTS (SELECT FROM jobs j WHERE j.id = l.job_id AND j.state IN ('available', 'running'))
            """, cancellationToken: ct));
}
