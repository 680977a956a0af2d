using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Npgsql;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Engine.Templating;
using Plugboard.Features.Executions;
using Plugboard.Features.Syncs;
using Plugboard.Jobs;

namespace Plugboard.Features.Webhooks;

/// <summary>
/// The job that processes stored events of one connector, in order: the events a batch of requests stored together
/// share one job (committed with them), a retry or a replay has a job of its own. One job at a time per connector.
/// </summary>
public static class WebhookJob
{
    public const string Kind = "webhook";

    /// <summary>Attempts per event; each failed attempt comes back with the queue's backoff.</summary>
    public const int MaxEventAttempts = 10;

    /// <summary>Attempts of a job itself, which fails only while the database is away: with the queue's backoff (capped at
    /// an hour) they span more than half a day of outage.</summary>
    public const int JobAttempts = 25;

    public sealed record Payload(string WorkspaceId, Guid ConnectorId, Guid[] EventIds);

    public static JobRequest Request(string workspaceId, Guid connectorId, Guid eventId, DateTimeOffset? runAt = null) => new(
        Kind: Kind,
        WorkspaceId: workspaceId,
        Payload: new Payload(workspaceId, connectorId, [eventId]),
        RunAt: runAt,
        MaxAttempts: JobAttempts,
        ConcurrencyKey: $"webhook:{connectorId}",
        ConcurrencyLimit: 1);

    /// <summary>The INSERT of one job per connector for rows <c>e</c> of connector_webhook_events (append FROM and GROUP BY
    /// e.workspace_id, e.connector_id).</summary>
    public const string InsertForEventsSql =
        """
        INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, max_attempts)
        SELECT gen_random_uuid(), 'webhook', jsonb_build_object('workspaceId', e.workspace_id, 'connectorId', e.connector_id, 'eventIds', jsonb_agg(e.id ORDER BY e.id)),
               e.workspace_id, 'webhook:' || e.connector_id, 1, 25
        """;
}

/// <summary>
/// Processes each event of its job into what the connector's manifest maps its type to (<c>webhooks.events</c>): an
/// incremental sync (trigger <c>webhook</c>), an execution with inputs rendered from the event, or nothing (ignored, or
/// unmapped: marked processed with a note). Each event commits alone, with what it triggered, under a lock on its row,
/// so no event triggers twice. A failed event keeps its error and comes back in a job of its own after the queue's
/// backoff (up to <see cref="WebhookJob.MaxEventAttempts"/> attempts; none when retrying cannot help), without holding
/// up the others. While a sync that started before the event arrived is still running, the event waits for it (a new
/// sync must see what the event announced); a queued sync, or one that started after the event arrived, serves it.
/// </summary>
public sealed class WebhookJobHandler(ManifestCache manifests, ILogger<WebhookJobHandler> logger) : IJobHandler
{
    public static readonly TimeSpan WaitForRunningSync = TimeSpan.FromSeconds(5);

    public string Kind => WebhookJob.Kind;

    private sealed record Target(string EventType, string ExternalId, string Payload, string Headers, bool Processed, DateTime ReceivedAt,
        string Manifest, string ManifestVersion, bool IsActive, int MaxConcurrency);

    private sealed record ActiveSync(Guid Id, string Status, DateTime? StartedAt);

    public async Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
    {
        var payload = job.PayloadAs<WebhookJob.Payload>();
        if (payload.WorkspaceId != job.WorkspaceId)
        {
            throw new PermanentJobFailure("The job's payload names another workspace than the job itself.");
        }
        await using var connection = await context.OpenConnectionAsync(ct);
        foreach (var eventId in payload.EventIds)
        {
            var one = new Event(payload.WorkspaceId, payload.ConnectorId, eventId);
            try
            {
                await ProcessAsync(one, connection, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException && !(e is NpgsqlException db && Http.ProblemExceptionHandler.IsUnavailable(db)))
            {
                // This event failed (its data, its mapping, a refused write): it is retried alone. Only an outage of the
                // database fails the job, which the queue retries, skipping the events already processed.
                await FailAsync(one, connection, e, ct);
            }
        }
    }

    private sealed record Event(string WorkspaceId, Guid ConnectorId, Guid EventId);

    /// <summary>Keeps the error on the event and, unless retrying cannot help or its attempts are spent, queues its retry.</summary>
    private async Task FailAsync(Event one, NpgsqlConnection connection, Exception error, CancellationToken ct)
    {
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var attempts = await connection.QuerySingleOrDefaultAsync<int?>(new CommandDefinition(
            """
            UPDATE connector_webhook_events SET attempts = attempts + 1, error = left(@error, 4000)
             WHERE workspace_id = @WorkspaceId AND id = @EventId AND NOT processed
            RETURNING attempts
            """, new { one.WorkspaceId, one.EventId, error = error.Message }, transaction, cancellationToken: ct));
        if (attempts is { } spent && error is not PermanentJobFailure && spent < WebhookJob.MaxEventAttempts)
        {
            await JobQueue.EnqueueAsync(connection, transaction,
                WebhookJob.Request(one.WorkspaceId, one.ConnectorId, one.EventId, DateTimeOffset.UtcNow + JobQueue.Backoff(spent)), ct);
        }
        await transaction.CommitAsync(ct);
        logger.LogWarning("Webhook event {EventId} failed (attempt {Attempts}): {Error}", one.EventId, attempts, error.Message);
    }

    private async Task ProcessAsync(Event payload, NpgsqlConnection connection, CancellationToken ct)
    {
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var target = await connection.QuerySingleOrDefaultAsync<Target>(new CommandDefinition(
            """
            SELECT e.event_type, e.external_id, e.payload::text AS payload, e.headers::text AS headers, e.processed, e.received_at,
                   c.manifest::text AS manifest, c.id::text || ':' || c.row_version AS manifest_version, c.is_active, c.max_concurrency
              FROM connector_webhook_events e
              JOIN connectors c ON c.workspace_id = e.workspace_id AND c.id = e.connector_id
             WHERE e.workspace_id = @WorkspaceId AND e.id = @EventId
               FOR UPDATE OF e
            """, payload, transaction, cancellationToken: ct));
        if (target is null || target.Processed)
        {
            return; // deleted with its connector, or already processed (by an earlier attempt, or a replay's job)
        }
        var manifest = manifests.Get(target.ManifestVersion, target.Manifest).Manifest;
        var action = manifest?.Webhooks?.ActionFor(target.EventType)
                     // Graph's "missed" lifecycle notification: notifications were dropped, so catch up with a sync.
                     ?? (target.EventType == "missed" && manifest?.Webhooks?.Verify == "graph" && manifest.Streams.Count > 0 ? new WebhookAction("sync") : null);

        object? result = null;
        string note;
        if (action is null)
        {
            note = $"No mapping for event type '{target.EventType}' in the manifest's webhooks.events: stored, nothing triggered.";
        }
        else if (action.Action == "ignore")
        {
            note = $"Ignored: webhooks.events maps '{target.EventType}' to ignore.";
        }
        else if (!target.IsActive)
        {
            note = "The connector is paused (is_active is false): nothing triggered. Replay the event once it is active again.";
        }
        else if (action.Action == "sync")
        {
            var (started, syncId) = await SyncJob.StartAsync(connection, transaction, payload.WorkspaceId, payload.ConnectorId, "webhook", action.FullRefresh, ct);
            if (started)
            {
                (result, note) = (new { sync_id = syncId }, "Started a sync.");
            }
            else
            {
                var active = await connection.QuerySingleOrDefaultAsync<ActiveSync>(new CommandDefinition(
                    "SELECT id, status, started_at FROM connector_sync_logs WHERE workspace_id = @WorkspaceId AND connector_id = @ConnectorId AND status IN ('queued', 'running')",
                    payload, transaction, cancellationToken: ct));
                if (active is not null && (active.Status == "queued" || active.StartedAt >= target.ReceivedAt))
                {
                    (result, note) = (new { sync_id = active.Id }, $"Served by sync {active.Id}, which had not started when the event arrived.");
                }
                else
                {
                    await WaitAsync(payload, connection, transaction, active?.Id, ct);
                    return;
                }
            }
        }
        else
        {
            using var document = JsonDocument.Parse(target.Payload);
            var model = WebhookTemplates.Model(document.RootElement,
                JsonSerializer.Deserialize<Dictionary<string, string>>(target.Headers) ?? [], target.EventType, target.ExternalId);
            JsonObject inputs;
            try
            {
                inputs = action.Inputs is null ? [] : await WebhookTemplates.InputsAsync(action.Inputs, model);
            }
            catch (TemplateException e)
            {
                throw new PermanentJobFailure($"webhooks.events['{target.EventType}'].inputs failed on this event: {e.Message}");
            }
            if (ManifestArguments.Check(manifest!.Inputs, inputs, "input", "inputs", refuseUndeclared: true) is [var issue, ..])
            {
                throw new PermanentJobFailure($"The inputs rendered from this event are not valid: {issue.Pointer}: {issue.Message}");
            }
            var executionId = Guid.CreateVersion7();
            var parameters = new DynamicParameters(new { payload.WorkspaceId, executionId, payload.ConnectorId, inputs = inputs.ToJsonString() });
            JobQueue.AddInsertParameters(parameters, ExecutionJob.Request(payload.WorkspaceId, payload.ConnectorId, executionId, target.MaxConcurrency));
            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                WITH job AS ({JobQueue.InsertOneSql})
                INSERT INTO connector_executions (workspace_id, id, connector_id, status, trigger, inputs)
                VALUES (@WorkspaceId, @executionId, @ConnectorId, 'queued', 'webhook', @inputs::jsonb)
                """, parameters, transaction, cancellationToken: ct));
            (result, note) = (new { execution_id = executionId }, "Started an execution.");
        }

        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE connector_webhook_events
               SET processed = true, processed_at = now(), attempts = attempts + 1, error = NULL, note = @note, result = @result::jsonb
             WHERE workspace_id = @WorkspaceId AND id = @EventId
            """, new { payload.WorkspaceId, payload.EventId, note, result = result is null ? null : JsonSerializer.Serialize(result) }, transaction, cancellationToken: ct));
        await transaction.CommitAsync(ct);
    }

    /// <summary>A sync that started before the event is running: come back after <see cref="WaitForRunningSync"/> in a job
    /// of its own (waiting spends no attempts, however long the sync runs).</summary>
    private async Task WaitAsync(Event payload, NpgsqlConnection connection, NpgsqlTransaction transaction, Guid? syncId, CancellationToken ct)
    {
        await JobQueue.EnqueueAsync(connection, transaction,
            WebhookJob.Request(payload.WorkspaceId, payload.ConnectorId, payload.EventId, DateTimeOffset.UtcNow + WaitForRunningSync), ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connector_webhook_events SET note = @note WHERE workspace_id = @WorkspaceId AND id = @EventId",
            new { payload.WorkspaceId, payload.EventId, note = $"Waiting for sync {syncId}, which started before the event arrived, to finish." },
            transaction, cancellationToken: ct));
        await transaction.CommitAsync(ct);
        logger.LogDebug("Webhook event {EventId} waits for sync {SyncId}", payload.EventId, syncId);
    }
}
