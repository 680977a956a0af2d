using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Engine.Running;
using Plugboard.Features.Documents;
using Plugboard.Features.Executions;
using Plugboard.Jobs;
using Plugboard.Security;

namespace Plugboard.Features.Syncs;

/// <summary>
/// Runs one sync in a worker: marks it running, runs the manifest's steps with each stream's stored cursor (or none on a
/// full refresh), then — in one transaction that also completes the job, applied only while this worker holds its
/// lease — imports every stream, advances the cursors that the imported records cover, marks missing records deleted
/// when a full refresh fetched everything, and writes the log's counts and the connector's outcome. A failed run
/// imports nothing and moves no cursor; after PLUGBOARD_SYNC_MAX_FAILURES failures in a row the connector is paused.
/// </summary>
public sealed class SyncJobHandler(Db db, KeyRing keys, ConnectorRunner runner, ManifestCache manifests, DocumentPipelineOptions pipeline,
    SyncSchedulerOptions options, ILogger<SyncJobHandler> logger) : IJobHandler
{
    public string Kind => SyncJob.Kind;

    private sealed record Target(bool FullRefresh, string Manifest, string ManifestVersion, string Config, Guid? CredentialId, string? EncryptedPayload);

    private sealed record StreamState(string Stream, string? Cursor);

    public async Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
    {
        var payload = job.PayloadAs<SyncJob.Payload>();
        if (payload.WorkspaceId != job.WorkspaceId)
        {
            throw new PermanentJobFailure("The job's payload names another workspace than the job itself.");
        }
        await using var connection = await context.OpenConnectionAsync(ct);
        var target = await connection.QuerySingleOrDefaultAsync<Target>(new CommandDefinition(
            """
            WITH s AS (
                UPDATE connector_sync_logs SET status = 'running', started_at = coalesce(started_at, now())
                 WHERE workspace_id = @WorkspaceId AND id = @SyncId AND status IN ('queued', 'running')
             RETURNING workspace_id, connector_id, full_refresh)
            SELECT s.full_refresh, c.manifest::text AS manifest, c.id::text || ':' || c.row_version AS manifest_version, c.config::text AS config,
                   c.credential_id, k.encrypted_payload
              FROM s
              JOIN connectors c ON c.workspace_id = s.workspace_id AND c.id = s.connector_id
              LEFT JOIN workspace_api_credentials k ON k.workspace_id = c.workspace_id AND k.id = c.credential_id
            """, payload, cancellationToken: ct));
        if (target is null)
        {
            return; // cancelled or deleted meanwhile: the worker completes the job
        }
        var states = (await connection.QueryAsync<StreamState>(new CommandDefinition(
            "SELECT stream, cursor #>> '{}' AS cursor FROM connector_stream_states WHERE workspace_id = @WorkspaceId AND connector_id = @ConnectorId AND cursor IS NOT NULL",
            payload, cancellationToken: ct))).ToDictionary(s => s.Stream, s => s.Cursor!, StringComparer.Ordinal);

        var result = await RunAsync(payload, target, states, ct);
        ct.ThrowIfCancellationRequested(); // lease lost or shutting down: another attempt runs it again

        try
        {
            await FinishAsync(connection, context, payload, target, states, result, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            // The import itself failed on every attempt (the database refused it): the sync ends as failed, counted
            // towards the pause, with the reason, rather than behind a dead job.
            logger.LogError(e, "Sync {SyncId}: its import failed on the last attempt", payload.SyncId);
            await using var retry = await context.OpenConnectionAsync(ct);
            await FinishAsync(retry, context, payload, target, states,
                new SyncRunResult(RunStatus.Failed, $"The records could not be imported after {job.Attempt} attempts ({e.GetType().Name}: {e.Message}).", result.Log, [], false), ct);
        }
    }

    /// <summary>Applies the outcome, then completes the job last in the same transaction (its row stays locked for the
    /// shortest time: the worker renews all its jobs' leases in one statement).</summary>
    private async Task FinishAsync(NpgsqlConnection connection, JobContext context, SyncJob.Payload payload, Target target, Dictionary<string, string> states,
        SyncRunResult result, CancellationToken ct)
    {
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (result.Status == RunStatus.Succeeded)
        {
            await SucceedAsync(connection, tx, payload, target, states, result, ct);
        }
        else
        {
            await FailAsync(connection, tx, payload, states, result, ct);
        }
        if (await context.CompleteAsync(connection, tx, ct))
        {
            await tx.CommitAsync(ct);
        }
    }

    private async Task<SyncRunResult> RunAsync(SyncJob.Payload payload, Target target, Dictionary<string, string> states, CancellationToken ct)
    {
        var parsed = manifests.Get(target.ManifestVersion, target.Manifest);
        if (parsed.Manifest is null)
        {
            return Failed("The connector's manifest is invalid: " + string.Join("; ", parsed.Issues.Select(i => $"{i.Pointer}: {i.Message}")));
        }
        if (parsed.Manifest.Streams.Count == 0)
        {
            return Failed("The connector's manifest has no streams, so a sync has nothing to import: add a 'streams' section (see the manifest reference).");
        }
        if (ConnectorCredentials.Decrypt(keys, payload.WorkspaceId, target.CredentialId, target.EncryptedPayload, logger, $"Sync {payload.SyncId}") is not { } credentials)
        {
            return Failed(ConnectorCredentials.Unreadable);
        }
        var store = target.CredentialId is { } id ? new DbCredentialStore(db, keys, payload.WorkspaceId, id) : null;
        var request = new RunRequest([], JsonNode.Parse(target.Config) as JsonObject ?? [], credentials, store)
        {
            ExecutionId = payload.SyncId.ToString(),
            Sync = new SyncRequest(target.FullRefresh, states),
        };
        return await runner.SyncAsync(parsed.Manifest, request, new SyncProgress(db, payload.WorkspaceId, payload.SyncId, logger), ct);
    }

    private static SyncRunResult Failed(string error) => new(RunStatus.Failed, error, [], [], false);

    private async Task SucceedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncJob.Payload payload, Target target, Dictionary<string, string> states,
        SyncRunResult result, CancellationToken ct)
    {
        int created = 0, updated = 0, unchanged = 0, deleted = 0, fetched = 0;
        var after = new JsonObject();
        await SyncImport.EnsureCounterAsync(connection, tx, payload.WorkspaceId, ct);
        foreach (var stream in result.Streams)
        {
            var counts = await SyncImport.ImportAsync(connection, tx, payload.WorkspaceId, payload.ConnectorId, stream,
                deleteMissing: target.FullRefresh && result.Complete, pipeline.WorkspaceConcurrency, ct);
            created += counts.Created;
            updated += counts.Updated;
            unchanged += counts.Unchanged;
            deleted += counts.Deleted;
            fetched += stream.Records.Count;
            // A run stopped by its page limit may have skipped older records: its cursor would pass over them for good.
            var cursor = result.Complete ? stream.Cursor : states.GetValueOrDefault(stream.Name);
            after[stream.Name] = cursor;
            if (cursor is not null && result.Complete)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    INSERT INTO connector_stream_states (workspace_id, connector_id, stream, cursor) VALUES (@WorkspaceId, @ConnectorId, @stream, to_jsonb(@cursor::text))
                    ON CONFLICT (workspace_id, connector_id, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = now()
                    """, new { payload.WorkspaceId, payload.ConnectorId, stream = stream.Name, cursor = Jsonb.CleanText(cursor) }, tx, cancellationToken: ct));
            }
        }
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE connector_sync_logs
               SET status = 'completed', completed_at = now(), records_fetched = @fetched, records_processed = @fetched, records_created = @created,
                   records_updated = @updated, records_unchanged = @unchanged, records_deleted = @deleted, pages = @pages, requests = @requests,
                   cursor_before = @before::jsonb, cursor_after = @after::jsonb,
                   metadata = jsonb_build_object('complete', @complete)
             WHERE workspace_id = @WorkspaceId AND id = @SyncId;
            UPDATE connectors SET last_sync_at = now(), error_count = 0, last_error = NULL, last_error_at = NULL
             WHERE workspace_id = @WorkspaceId AND id = @ConnectorId;
            """,
            new
            {
                payload.WorkspaceId,
                payload.SyncId,
                payload.ConnectorId,
                fetched,
                created,
                updated,
                unchanged,
                deleted,
                pages = result.Pages,
                requests = result.Requests,
                before = JsonSerializer.Serialize(states),
                after = after.ToJsonString(),
                complete = result.Complete,
            }, tx, cancellationToken: ct));
        logger.LogInformation("Sync {SyncId}: {Fetched} fetched, {Created} created, {Updated} updated, {Unchanged} unchanged, {Deleted} deleted",
            payload.SyncId, fetched, created, updated, unchanged, deleted);
    }

    private async Task FailAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncJob.Payload payload, Dictionary<string, string> states, SyncRunResult result,
        CancellationToken ct)
    {
        var error = Jsonb.CleanText(result.Error ?? result.Status.ToString());
        var paused = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            """
            UPDATE connector_sync_logs
               SET status = CASE WHEN @status = 'Cancelled' THEN 'cancelled' ELSE 'failed' END, completed_at = now(), error_message = @error,
                   pages = @pages, requests = @requests, cursor_before = @before::jsonb, cursor_after = @before::jsonb
             WHERE workspace_id = @WorkspaceId AND id = @SyncId;
            UPDATE connectors
               SET last_sync_at = now(), error_count = error_count + 1, last_error = @error, last_error_at = now(),
                   sync_paused_at = CASE WHEN error_count + 1 >= @maxFailures THEN now() ELSE sync_paused_at END,
                   next_sync_at = CASE WHEN error_count + 1 >= @maxFailures THEN NULL ELSE next_sync_at END
             WHERE workspace_id = @WorkspaceId AND id = @ConnectorId
            RETURNING sync_paused_at IS NOT NULL AND error_count = @maxFailures;
            """,
            new
            {
                payload.WorkspaceId,
                payload.SyncId,
                payload.ConnectorId,
                status = result.Status.ToString(),
                error,
                pages = result.Pages,
                requests = result.Requests,
                before = JsonSerializer.Serialize(states),
                maxFailures = options.MaxConsecutiveFailures,
            }, tx, cancellationToken: ct));
        if (paused)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO audit_log (id, workspace_id, action, target_type, target_id, details)
                VALUES (@id, @WorkspaceId, 'connector.sync_paused', 'connector', @connectorId, @details::jsonb)
                """,
                new
                {
                    id = Guid.CreateVersion7(),
                    payload.WorkspaceId,
                    connectorId = payload.ConnectorId.ToString(),
                    details = JsonSerializer.Serialize(new { consecutive_failures = options.MaxConsecutiveFailures, last_error = error }),
                }, tx, cancellationToken: ct));
        }
        logger.LogWarning("Sync {SyncId} {Status}: {Error}", payload.SyncId, result.Status, error);
    }
}
