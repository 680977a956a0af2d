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

    /// <summary>What the sync's checkpoints committed so far (counts, and the cursors of ordered streams).</summary>
    private sealed class Committed
    {
        public int Fetched, Created, Updated, Unchanged;
        public Dictionary<string, string> Cursors { get; } = new(StringComparer.Ordinal);
    }

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
                UPDATE connector_sync_logs SET status = 'running', started_at = coalesce(started_at, now()),
                       -- Counts describe this attempt (a crashed one's checkpoints are then counted as unchanged).
                       records_fetched = 0, records_processed = 0, records_created = 0, records_updated = 0, records_unchanged = 0
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

        var committed = new Committed();
        var result = await RunAsync(payload, target, states, (page, token) => CheckpointAsync(context, payload, page, committed, token), ct);
        ct.ThrowIfCancellationRequested(); // lease lost or shutting down: another attempt runs it again

        try
        {
            await FinishAsync(connection, context, payload, target, states, committed, result, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            // The import itself failed on every attempt (the database refused it): the sync ends as failed, counted
            // towards the pause, with the reason, rather than behind a dead job.
            logger.LogError(e, "Sync {SyncId}: its import failed on the last attempt", payload.SyncId);
            await using var retry = await context.OpenConnectionAsync(ct);
            await FinishAsync(retry, context, payload, target, states, committed,
                new SyncRunResult(RunStatus.Failed, $"The records could not be imported after {job.Attempt} attempts ({e.GetType().Name}: {e.Message}).", result.Log, [], false), ct);
        }
    }

    /// <summary>Applies the outcome, then completes the job last in the same transaction (its row stays locked for the
    /// shortest time: the worker renews all its jobs' leases in one statement).</summary>
    private async Task FinishAsync(NpgsqlConnection connection, JobContext context, SyncJob.Payload payload, Target target, Dictionary<string, string> states,
        Committed committed, SyncRunResult result, CancellationToken ct)
    {
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (result.Status == RunStatus.Succeeded)
        {
            await SucceedAsync(connection, tx, payload, target, states, committed, result, ct);
        }
        else
        {
            await FailAsync(connection, tx, payload, states, committed, result, ct);
        }
        if (await context.CompleteAsync(connection, tx, ct))
        {
            await tx.CommitAsync(ct);
        }
    }

    /// <summary>
    /// Commits a batch of a stream's records while the sync goes on: imported as at the end (no deletes), the stream's
    /// cursor moved to what the batch covers when the stream is ordered, and the log's counts updated so far.
    /// </summary>
    private async Task CheckpointAsync(JobContext context, SyncJob.Payload payload, StreamRecords page, Committed committed, CancellationToken ct)
    {
        await using var connection = await context.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await SyncImport.EnsureCounterAsync(connection, tx, payload.WorkspaceId, ct);
        var counts = await SyncImport.ImportAsync(connection, tx, payload.WorkspaceId, payload.ConnectorId, page, deleteMissing: false, pipeline.WorkspaceConcurrency, ct);
        if (page.Cursor is { } cursor)
        {
            await StoreCursorAsync(connection, tx, payload, page.Name, cursor, ct);
        }
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE connector_sync_logs
               SET records_fetched = records_fetched + @fetched, records_processed = records_processed + @fetched, records_created = records_created + @Created,
                   records_updated = records_updated + @Updated, records_unchanged = records_unchanged + @Unchanged
             WHERE workspace_id = @WorkspaceId AND id = @SyncId
            """, new { payload.WorkspaceId, payload.SyncId, fetched = page.Records.Count, counts.Created, counts.Updated, counts.Unchanged }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        committed.Fetched += page.Records.Count;
        committed.Created += counts.Created;
        committed.Updated += counts.Updated;
        committed.Unchanged += counts.Unchanged;
        if (page.Cursor is not null)
        {
            committed.Cursors[page.Name] = page.Cursor;
        }
    }

    private static Task StoreCursorAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncJob.Payload payload, string stream, string cursor, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO connector_stream_states (workspace_id, connector_id, stream, cursor) VALUES (@WorkspaceId, @ConnectorId, @stream, to_jsonb(@cursor::text))
            ON CONFLICT (workspace_id, connector_id, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = now()
            """, new { payload.WorkspaceId, payload.ConnectorId, stream, cursor = Jsonb.CleanText(cursor) }, tx, cancellationToken: ct));

    private async Task<SyncRunResult> RunAsync(SyncJob.Payload payload, Target target, Dictionary<string, string> states,
        Func<StreamRecords, CancellationToken, Task> checkpoint, CancellationToken ct)
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
            Sync = new SyncRequest(target.FullRefresh, states) { Checkpoint = checkpoint, CheckpointRecords = options.CheckpointRecords },
        };
        return await runner.SyncAsync(parsed.Manifest, request, new SyncProgress(db, payload.WorkspaceId, payload.SyncId, logger), ct);
    }

    private static SyncRunResult Failed(string error) => new(RunStatus.Failed, error, [], [], false);

    private async Task SucceedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncJob.Payload payload, Target target, Dictionary<string, string> states,
        Committed committed, SyncRunResult result, CancellationToken ct)
    {
        int created = committed.Created, updated = committed.Updated, unchanged = committed.Unchanged, deleted = 0, fetched = committed.Fetched;
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
            // A run stopped by its page limit may have skipped older records: its cursor would pass over them for good
            // (unless the stream is ordered: then its checkpoints moved it only as far as what they committed).
            var cursor = result.Complete ? stream.Cursor : committed.Cursors.GetValueOrDefault(stream.Name) ?? states.GetValueOrDefault(stream.Name);
            after[stream.Name] = cursor;
            if (cursor is not null && result.Complete)
            {
                await StoreCursorAsync(connection, tx, payload, stream.Name, cursor, ct);
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

    /// <summary>A failed sync keeps what its checkpoints committed (their counts stay in the log) and nothing else.</summary>
    private async Task FailAsync(NpgsqlConnection connection, NpgsqlTransaction tx, SyncJob.Payload payload, Dictionary<string, string> states, Committed committed,
        SyncRunResult result, CancellationToken ct)
    {
        var error = Jsonb.CleanText(result.Error ?? result.Status.ToString());
        var after = new Dictionary<string, string>(states, StringComparer.Ordinal);
        foreach (var (stream, cursor) in committed.Cursors)
        {
            after[stream] = cursor;
        }
        var paused = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            """
            UPDATE connector_sync_logs
               SET status = CASE WHEN @status = 'Cancelled' THEN 'cancelled' ELSE 'failed' END, completed_at = now(), error_message = @error,
                   pages = @pages, requests = @requests, cursor_before = @before::jsonb, cursor_after = @after::jsonb
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
                after = JsonSerializer.Serialize(after),
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
