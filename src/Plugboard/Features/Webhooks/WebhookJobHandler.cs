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

/// <summary>The job that processes one stored event. One at a time per connector, so events trigger in arrival order.</summary>
public static class WebhookJob
{
    public const string Kind = "webhook";

    public sealed record Payload(string WorkspaceId, Guid ConnectorId, Guid EventId);

    public static JobRequest Request(string workspaceId, Guid connectorId, Guid eventId, DateTimeOffset? runAt = null) => new(
        Kind: Kind,
        WorkspaceId: workspaceId,
        Payload: new Payload(workspaceId, connectorId, eventId),
        RunAt: runAt,
        MaxAttempts: 10,
        ConcurrencyKey: $"webhook:{connectorId}",
        ConcurrencyLimit: 1);

    /// <summary>The job's INSERT as SQL over rows <c>e</c> of connector_webhook_events (for replays of many).</summary>
    public const string InsertForEventsSql =
        """
        INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, max_attempts)
        SELECT gen_random_uuid(), 'webhook', jsonb_build_object('workspaceId', e.workspace_id, 'connectorId', e.connector_id, 'eventId', e.id),
               e.workspace_id, 'webhook:' || e.connector_id, 1, 10
        """;
}

/// <summary>
/// Processes an event into what the connector's manifest maps its type to (<c>webhooks.events</c>): an incremental
/// sync (trigger <c>webhook</c>), an execution with inputs rendered from the event, or nothing (ignored, or unmapped:
/// marked processed with a note). The trigger, the event's outcome and the job's completion commit together.
/// While a sync that started before the event arrived is still running, the event waits for it (a new sync must see
/// what the event announced); a queued sync, or one that started after the event arrived, serves it.
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
        try
        {
            await ProcessAsync(payload, context, connection, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE connector_webhook_events SET attempts = attempts + 1, error = left(@error, 4000) WHERE workspace_id = @WorkspaceId AND id = @EventId",
                new { payload.WorkspaceId, payload.EventId, error = e.Message }, cancellationToken: CancellationToken.None));
            throw;
        }
    }

    private async Task ProcessAsync(WebhookJob.Payload payload, JobContext context, NpgsqlConnection connection, CancellationToken ct)
    {
        var target = await connection.QuerySingleOrDefaultAsync<Target>(new CommandDefinition(
            """
            SELECT e.event_type, e.external_id, e.payload::text AS payload, e.headers::text AS headers, e.processed, e.received_at,
                   c.manifest::text AS manifest, c.id::text || ':' || c.row_version AS manifest_version, c.is_active, c.max_concurrency
              FROM connector_webhook_events e
              JOIN connectors c ON c.workspace_id = e.workspace_id AND c.id = e.connector_id
             WHERE e.workspace_id = @WorkspaceId AND e.id = @EventId
            """, payload, cancellationToken: ct));
        if (target is null || target.Processed)
        {
            return; // deleted with its connector, or already processed (the worker completes the job)
        }
        var manifest = manifests.Get(target.ManifestVersion, target.Manifest).Manifest;
        var action = manifest?.Webhooks?.ActionFor(target.EventType)
                     // Graph's "missed" lifecycle notification: notifications were dropped, so catch up with a sync.
                     ?? (target.EventType == "missed" && manifest?.Webhooks?.Verify == "graph" && manifest.Streams.Count > 0 ? new WebhookAction("sync") : null);

        await using var transaction = await connection.BeginTransactionAsync(ct);
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
                    await WaitAsync(payload, context, connection, transaction, active?.Id, ct);
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
        if (await context.CompleteAsync(connection, transaction, ct))
        {
            await transaction.CommitAsync(ct);
        }
    }

    /// <summary>A sync that started before the event is running: come back after <see cref="WaitForRunningSync"/> with a
    /// fresh job (waiting spends no attempts, however long the sync runs).</summary>
    private async Task WaitAsync(WebhookJob.Payload payload, JobContext context, NpgsqlConnection connection, NpgsqlTransaction transaction, Guid? syncId, CancellationToken ct)
    {
        await JobQueue.EnqueueAsync(connection, transaction,
            WebhookJob.Request(payload.WorkspaceId, payload.ConnectorId, payload.EventId, DateTimeOffset.UtcNow + WaitForRunningSync), ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE connector_webhook_events SET note = @note WHERE workspace_id = @WorkspaceId AND id = @EventId",
            new { payload.WorkspaceId, payload.EventId, note = $"Waiting for sync {syncId}, which started before the event arrived, to finish." },
            transaction, cancellationToken: ct));
        if (await context.CompleteAsync(connection, transaction, ct))
        {
            await transaction.CommitAsync(ct);
            logger.LogDebug("Webhook event {EventId} waits for sync {SyncId}", payload.EventId, syncId);
        }
    }
}
