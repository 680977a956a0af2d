using System.Text.Json;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.AuditLog;

public sealed record AuditEntry(Guid Id, string? WorkspaceId, Guid? ActorUserId, Guid? ActorKeyId, string Action, string TargetType, string? TargetId,
    JsonElement Details, DateTime CreatedAt);

public static class AuditLogApi
{
    public static void Map(RouteGroupBuilder workspace) =>
        workspace.MapGet("/audit-log", ListWorkspace).WithTags("Audit log").Produces<Page<AuditEntry>>();

    private static Task<IResult> ListWorkspace(RequestDb db, string? action, int? limit, string? cursor, CancellationToken ct)
    {
        db.RequireRole("admin", "read the audit log");
        return ListAsync(db, "workspace_id = app_workspace_id()", action, limit, cursor, ct);
    }

    public static Task<IResult> ListPlatform(RequestDb db, string? action, int? limit, string? cursor, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "read the platform audit log");
        return ListAsync(db, "workspace_id IS NULL", action, limit, cursor, ct);
    }

    private static async Task<IResult> ListAsync(RequestDb db, string scope, string? action, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<AuditRow>(
            $"""
            SELECT id, workspace_id, actor_user_id, actor_key_id, action, target_type, target_id, details::text AS details, created_at
              FROM audit_log
             WHERE {scope} AND (@action::text IS NULL OR action = @action) AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new { action, after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<AuditEntry>(page.Items.Select(r => new AuditEntry(r.Id, r.WorkspaceId, r.ActorUserId, r.ActorKeyId, r.Action,
            r.TargetType, r.TargetId, JsonColumns.Element(r.Details), r.CreatedAt)).ToList(), page.NextCursor));
    }

    private sealed record AuditRow(Guid Id, string? WorkspaceId, Guid? ActorUserId, Guid? ActorKeyId, string Action, string TargetType, string? TargetId,
        string Details, DateTime CreatedAt);
}
