using System.Security.Cryptography;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Workspaces;

public sealed record CreateWorkspaceRequest(string Name);

public sealed record UpdateWorkspaceRequest(string Name);

public sealed record Workspace(string Id, string Name, string Role, DateTime CreatedAt, DateTime UpdatedAt);

public sealed record WorkspaceStats(long Connectors, long ActiveConnectors, long Executions, long Succeeded, long Failed,
    decimal? SuccessRate, decimal? AvgDurationMs, DateTime? LastRunAt);

public sealed record WorkspaceDetail(string Id, string Name, string Role, DateTime CreatedAt, DateTime UpdatedAt, WorkspaceStats Stats);

public static class WorkspacesApi
{
    public static void Map(RouteGroupBuilder v1, RouteGroupBuilder workspace)
    {
        v1.MapGet("/workspaces", List).WithTags("Workspaces").Produces<Page<Workspace>>();
        v1.MapPost("/workspaces", Create).WithTags("Workspaces").Produces<Workspace>(201);
        workspace.MapGet("", Get).WithTags("Workspaces").Produces<WorkspaceDetail>();
        workspace.MapPatch("", Update).WithTags("Workspaces").Produces<Workspace>();
        workspace.MapDelete("", Delete).WithTags("Workspaces").Produces(204);
    }

    public static string NewWorkspaceId() => "ws_" + RandomNumberGenerator.GetString("abcdefghijklmnopqrstuvwxyz0123456789", 16);

    private const string Columns = "w.id, w.name, m.role, w.created_at, w.updated_at";

    internal static async Task<IResult> List(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var after = Paging.After(cursor);
        var rows = await db.QueryAsync<WorkspaceRow>(
            $"""
            SELECT {Columns}, m.created_at AS joined_at, w.xmin::text::bigint AS row_version
              FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = app_user_id()
             WHERE (@after::text IS NULL OR w.id > @after) AND (@keyWorkspace::text IS NULL OR w.id = @keyWorkspace)
             ORDER BY w.id
             LIMIT @take
            """, new { after, take = take + 1, keyWorkspace = db.KeyWorkspaceId }, ct);
        // A confined key lists only its workspace, a capped one shows the role it actually has there.
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Workspace>(page.Items.Select(r => (r with { Role = Roles.Capped(r.Role, db.KeyRole) }).ToWorkspace()).ToList(), page.NextCursor));
    }

    private static async Task<IResult> Create(CreateWorkspaceRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        if (db.KeyWorkspaceId is not null)
        {
            throw Problems.Forbidden("This API key is confined to one workspace and cannot create workspaces; use a personal key.");
        }
        var name = Validate.Name(body.Name);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var id = NewWorkspaceId();
        await db.SetWorkspaceAsync(id, "owner", ct);
        var row = await db.QuerySingleOrDefaultAsync<WorkspaceRow>(
            """
            WITH w AS (INSERT INTO workspaces (id, name, created_by) VALUES (@id, @name, app_user_id()) RETURNING *),
                 m AS (INSERT INTO workspace_members (workspace_id, user_id, role) SELECT w.id, app_user_id(), 'owner' FROM w RETURNING *)
            SELECT w.id, w.name, m.role, w.created_at, w.updated_at, m.created_at AS joined_at, 0::bigint AS row_version FROM w, m
            """, new { id, name }, ct);
        await Audit.WriteAsync(db, "workspace.created", "workspace", id, new { name }, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{id}", row!.ToWorkspace(), ct);
    }

    private static async Task<IResult> Get(RequestDb db, HttpContext http, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<WorkspaceRow>(
            $"SELECT w.id, w.name, @role AS role, w.created_at, w.updated_at, w.created_at AS joined_at, w.xmin::text::bigint AS row_version FROM workspaces w WHERE w.id = app_workspace_id()",
            new { role = db.WorkspaceRole }, ct) ?? throw Problems.NotFound("The workspace");
        var stats = await db.QuerySingleOrDefaultAsync<WorkspaceStats>(
            "SELECT connectors, active_connectors, executions, succeeded, failed, success_rate, avg_duration_ms, last_run_at FROM workspace_execution_stats()", null, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(new WorkspaceDetail(row.Id, row.Name, row.Role, row.CreatedAt, row.UpdatedAt, stats!));
    }

    private static async Task<IResult> Update(UpdateWorkspaceRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("admin", "rename the workspace");
        var name = Validate.Name(body.Name);
        var ifMatch = ETags.IfMatch(http.Request);
        var row = await db.QuerySingleOrDefaultAsync<WorkspaceRow>(
            """
            UPDATE workspaces w SET name = @name
             WHERE w.id = app_workspace_id() AND (@ifMatch::bigint[] IS NULL OR w.xmin::text::bigint = ANY(@ifMatch))
            RETURNING w.id, w.name, @role AS role, w.created_at, w.updated_at, w.created_at AS joined_at, w.xmin::text::bigint AS row_version
            """, new { name, ifMatch, role = db.WorkspaceRole }, ct)
            ?? throw Problems.PreconditionFailed("The workspace changed since you read it: GET it again and retry with the new ETag.");
        await Audit.WriteAsync(db, "workspace.updated", "workspace", row.Id, new { name }, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToWorkspace());
    }

    private static async Task<IResult> Delete(RequestDb db, CancellationToken ct)
    {
        db.RequireRole("owner", "delete the workspace");
        var deleted = await db.ExecuteAsync("DELETE FROM workspaces WHERE id = app_workspace_id()", null, ct);
        if (deleted == 0)
        {
            throw Problems.NotFound("The workspace");
        }
        await Audit.WriteAsync(db, "workspace.deleted", "workspace", db.WorkspaceId, null, ct);
        return TypedResults.NoContent();
    }

    private sealed record WorkspaceRow(string Id, string Name, string Role, DateTime CreatedAt, DateTime UpdatedAt, DateTime JoinedAt, long RowVersion)
    {
        public Workspace ToWorkspace() => new(Id, Name, Role, CreatedAt, UpdatedAt);
    }
}
