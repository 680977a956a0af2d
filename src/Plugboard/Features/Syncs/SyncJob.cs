using Dapper;
using Npgsql;
using Plugboard.Jobs;

namespace Plugboard.Features.Syncs;

/// <summary>
/// The job that runs one sync of one connector. A sync is started by writing its log row (status queued) and its job
/// in one statement; the log's unique index on active syncs makes a second start of the same connector a no-op, so
/// any number of schedulers and API processes never start two at once.
/// </summary>
public static class SyncJob
{
    public const string Kind = "sync";

    public sealed record Payload(string WorkspaceId, Guid ConnectorId, Guid SyncId);

    /// <summary>The log row and its job, written only when the connector has no queued or running sync.</summary>
    private static readonly string StartSql =
        $"""
        WITH log AS (
            INSERT INTO connector_sync_logs (workspace_id, id, connector_id, status, trigger, full_refresh, job_id)
            SELECT c.workspace_id, @syncId, c.id, 'queued', @trigger, @fullRefresh, @job_id
              FROM connectors c
             WHERE c.workspace_id = @workspaceId AND c.id = @connectorId
            ON CONFLICT (workspace_id, connector_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id),
        job AS (
            {JobQueue.InsertOneSelectSql}
             WHERE EXISTS (SELECT FROM log))
        SELECT EXISTS (SELECT FROM log)
        """;

    /// <summary>Starts a sync in the caller's transaction; false when one is already queued or running.</summary>
    public static async Task<(bool Started, Guid SyncId)> StartAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string workspaceId, Guid connectorId,
        string trigger, bool fullRefresh, CancellationToken ct)
    {
        var (sql, parameters, syncId) = Start(workspaceId, connectorId, trigger, fullRefresh);
        var started = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(sql, parameters, transaction, cancellationToken: ct));
        return (started, syncId);
    }

    public static (string Sql, DynamicParameters Parameters, Guid SyncId) Start(string workspaceId, Guid connectorId, string trigger, bool fullRefresh)
    {
        var syncId = Guid.CreateVersion7();
        var parameters = new DynamicParameters(new { syncId, workspaceId, connectorId, trigger, fullRefresh });
        JobQueue.AddInsertParameters(parameters, new JobRequest(
            Kind: Kind,
            WorkspaceId: workspaceId,
            Payload: new Payload(workspaceId, connectorId, syncId),
            MaxAttempts: 3,
            ConcurrencyKey: $"sync:{connectorId}",
            ConcurrencyLimit: 1));
        return (StartSql, parameters, syncId);
    }
}
