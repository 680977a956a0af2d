using System.Text.Json;
using Plugboard.Data;
using Plugboard.Features.Connectors;
using Plugboard.Http;

namespace Plugboard.Features.Syncs;

public sealed record StartSyncRequest(bool? FullRefresh = null);

/// <summary>
/// One sync of a connector. Counts: <c>records_fetched</c> came back from the API; each was <c>created</c>,
/// <c>updated</c> or <c>unchanged</c>; <c>records_deleted</c> were missing from a complete full refresh.
/// <c>cursor_before</c>/<c>cursor_after</c> hold each stream's cursor.
/// </summary>
public sealed record SyncLog(Guid Id, Guid ConnectorId, string Status, string Trigger, bool FullRefresh, DateTime CreatedAt, DateTime? StartedAt, DateTime? CompletedAt,
    int RecordsFetched, int RecordsCreated, int RecordsUpdated, int RecordsUnchanged, int RecordsDeleted, int RecordsFailed, int Pages, int Requests,
    JsonElement CursorBefore, JsonElement CursorAfter, string? Error);

internal sealed record SyncLogRow
{
    public Guid Id { get; init; }
    public Guid ConnectorId { get; init; }
    public string Status { get; init; } = "";
    public string Trigger { get; init; } = "";
    public bool FullRefresh { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public int RecordsFetched { get; init; }
    public int RecordsCreated { get; init; }
    public int RecordsUpdated { get; init; }
    public int RecordsUnchanged { get; init; }
    public int RecordsDeleted { get; init; }
    public int RecordsFailed { get; init; }
    public int Pages { get; init; }
    public int Requests { get; init; }
    public string CursorBefore { get; init; } = "{}";
    public string CursorAfter { get; init; } = "{}";
    public string? ErrorMessage { get; init; }

    public const string Columns =
        """
        id, connector_id, status, trigger, full_refresh, created_at, started_at, completed_at, records_fetched, records_created, records_updated,
        records_unchanged, records_deleted, records_failed, pages, requests, cursor_before::text AS cursor_before, cursor_after::text AS cursor_after, error_message
        """;

    public SyncLog ToLog() => new(Id, ConnectorId, Status, Trigger, FullRefresh, CreatedAt, StartedAt, CompletedAt, RecordsFetched, RecordsCreated, RecordsUpdated,
        RecordsUnchanged, RecordsDeleted, RecordsFailed, Pages, Requests, JsonColumns.Element(CursorBefore), JsonColumns.Element(CursorAfter), ErrorMessage);
}

/// <summary>Start a sync now, list and read a connector's syncs, pause and resume its schedule.</summary>
public static class SyncsApi
{
    public static readonly string[] Statuses = ["queued", "running", "completed", "failed", "cancelled"];
    public static readonly string[] Triggers = ["schedule", "manual", "webhook"];

    public static void Map(RouteGroupBuilder workspace)
    {
        var connector = workspace.MapGroup("/connectors/{connectorId:guid}").WithTags("Syncs");
        connector.MapPost("/sync", Start).Produces<SyncLog>(202);
        connector.MapGet("/syncs", List).Produces<Page<SyncLog>>();
        connector.MapGet("/syncs/{syncId:guid}", async (Guid connectorId, Guid syncId, RequestDb db, CancellationToken ct) =>
            TypedResults.Ok(await ReadAsync(db, connectorId, syncId, ct))).Produces<SyncLog>();
        connector.MapGet("/syncs/{syncId:guid}/stream", Stream).Produces(200, contentType: "text/event-stream");
        connector.MapPost("/pause", Pause).Produces<Connector>();
        connector.MapPost("/resume", Resume).Produces<Connector>();
    }

    private static async Task<IResult> Start(Guid connectorId, StartSyncRequest body, RequestDb db, CancellationToken ct)
    {
        await ConnectorAsync(db, connectorId, ct);
        db.RequireRole("member", "start syncs");
        var (sql, parameters, syncId) = SyncJob.Start(db.WorkspaceId!, connectorId, "manual", body.FullRefresh ?? false);
        if (!await db.QuerySingleOrDefaultAsync<bool>(sql, parameters, ct))
        {
            var active = await db.QuerySingleOrDefaultAsync<Guid?>(
                "SELECT id FROM connector_sync_logs WHERE connector_id = @connectorId AND status IN ('queued', 'running')", new { connectorId }, ct);
            throw new ProblemException(409, "sync-running", "A sync is already running",
                "This connector has a sync queued or running; wait for it to end (GET its log) and start again.",
                new Dictionary<string, object?> { ["sync_id"] = active });
        }
        return TypedResults.Accepted($"/v1/workspaces/{db.WorkspaceId}/connectors/{connectorId}/syncs/{syncId}", await ReadAsync(db, connectorId, syncId, ct));
    }

    internal static async Task<IResult> List(Guid connectorId, RequestDb db, string? status, string? trigger, int? limit, string? cursor, CancellationToken ct)
    {
        await ConnectorAsync(db, connectorId, ct);
        if (status is not null && !Statuses.Contains(status))
        {
            throw Problems.BadRequest($"status must be one of: {string.Join(", ", Statuses)}.");
        }
        if (trigger is not null && !Triggers.Contains(trigger))
        {
            throw Problems.BadRequest($"trigger must be one of: {string.Join(", ", Triggers)}.");
        }
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<SyncLogRow>(
            $"""
            SELECT {SyncLogRow.Columns} FROM connector_sync_logs
             WHERE connector_id = @connectorId AND (@status::text IS NULL OR status = @status) AND (@trigger::text IS NULL OR trigger = @trigger)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new { connectorId, status, trigger, after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<SyncLog>(page.Items.Select(r => r.ToLog()).ToList(), page.NextCursor));
    }

    private static async Task<SyncLog> ReadAsync(RequestDb db, Guid connectorId, Guid syncId, CancellationToken ct) =>
        (await db.QuerySingleOrDefaultAsync<SyncLogRow>($"SELECT {SyncLogRow.Columns} FROM connector_sync_logs WHERE connector_id = @connectorId AND id = @syncId",
            new { connectorId, syncId }, ct) ?? throw Problems.NotFound("The sync")).ToLog();

    /// <summary>Progress as server-sent events (<see cref="PolledEvents"/>): the log whenever its status, pages or
    /// requests change, then the finished log.</summary>
    private static async Task<IResult> Stream(Guid connectorId, Guid syncId, RequestDb db, Db databases, HttpContext http, CancellationToken ct)
    {
        await ReadAsync(db, connectorId, syncId, ct);
        return await PolledEvents.StreamAsync(db, databases, http, async (session, token) =>
        {
            var row = await session.QuerySingleOrDefaultAsync<SyncLogRow>(
                $"SELECT {SyncLogRow.Columns} FROM connector_sync_logs WHERE connector_id = @connectorId AND id = @syncId", new { connectorId, syncId }, token);
            return row is null ? null // deleted with its connector
                : new PolledState($"{row.Status}/{row.Pages}/{row.Requests}", row.ToLog(), row.Status is "completed" or "failed" or "cancelled");
        }, ct);
    }

    private static Task<ConnectorsApi.ConnectorRow> ConnectorAsync(RequestDb db, Guid connectorId, CancellationToken ct) => ConnectorsApi.Find(db, connectorId, ct);

    /// <summary>Stops scheduled syncs (a running one finishes); the frequency is kept for resume.</summary>
    private static async Task<IResult> Pause(Guid connectorId, RequestDb db, CancellationToken ct)
    {
        await ConnectorAsync(db, connectorId, ct);
        db.RequireRole("admin", "pause connectors");
        var row = await db.QuerySingleOrDefaultAsync<ConnectorsApi.ConnectorRow>(
            $"UPDATE connectors SET sync_paused_at = coalesce(sync_paused_at, now()), next_sync_at = NULL WHERE id = @connectorId RETURNING {ConnectorsApi.Columns}",
            new { connectorId }, ct);
        await Audit.WriteAsync(db, "connector.sync_paused", "connector", connectorId.ToString(), null, ct);
        return TypedResults.Ok((row ?? throw Problems.NotFound("The connector")).ToConnector());
    }

    /// <summary>Clears the pause and the failure count; the next start is due at once if one was missed, else at its time.</summary>
    private static async Task<IResult> Resume(Guid connectorId, RequestDb db, CancellationToken ct)
    {
        var existing = await ConnectorAsync(db, connectorId, ct);
        db.RequireRole("admin", "resume connectors");
        var schedule = ConnectorsApi.Schedule(existing.SyncFrequency, existing.SyncTimezone);
        var next = existing.IsActive
            ? schedule.Next(DateTimeOffset.UtcNow, existing.LastSyncAt is { } last ? new DateTimeOffset(last, TimeSpan.Zero) : null)
            : null;
        var row = await db.QuerySingleOrDefaultAsync<ConnectorsApi.ConnectorRow>(
            $"""
            UPDATE connectors SET sync_paused_at = NULL, error_count = 0, next_sync_at = @next
             WHERE id = @connectorId RETURNING {ConnectorsApi.Columns}
            """, new { connectorId, next }, ct);
        await Audit.WriteAsync(db, "connector.sync_resumed", "connector", connectorId.ToString(), null, ct);
        return TypedResults.Ok((row ?? throw Problems.NotFound("The connector")).ToConnector());
    }
}
