using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Members;

public sealed record AddMemberRequest(string Email, string Role);

public sealed record UpdateMemberRequest(string Role);

public sealed record Member(Guid UserId, string Email, string? DisplayName, string Role, DateTime CreatedAt, DateTime UpdatedAt);

public static class MembersApi
{
    public static void Map(RouteGroupBuilder workspace)
    {
        var members = workspace.MapGroup("/members").WithTags("Members");
        members.MapGet("", List).Produces<Page<Member>>();
        members.MapPost("", Add).Produces<Member>(201);
        members.MapPatch("/{userId:guid}", Update).Produces<Member>();
        members.MapDelete("/{userId:guid}", Remove).Produces(204);
    }

    private const string Select =
        """
        SELECT m.user_id, u.email, u.display_name, m.role, m.created_at, m.updated_at
          FROM workspace_members m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = app_workspace_id()
        """;

    private static async Task<IResult> List(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<Member>($"{Select} AND (@after::uuid IS NULL OR m.user_id > @after) ORDER BY m.user_id LIMIT @take",
            new { after = Paging.AfterId(cursor), take = take + 1 }, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, m => m.UserId));
    }

    private static async Task<IResult> Add(AddMemberRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("owner", "add members");
        var email = Validate.Email(body.Email);
        var role = Roles.ValidWorkspaceRole(body.Role);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var userId = await db.QuerySingleOrDefaultAsync<Guid>("SELECT ensure_user(@email)", new { email }, ct);
        var inserted = await db.ExecuteAsync(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (app_workspace_id(), @userId, @role) ON CONFLICT DO NOTHING",
            new { userId, role }, ct);
        if (inserted == 0)
        {
            throw Problems.Conflict($"{email} is already a member of this workspace; change their role with PATCH instead.");
        }
        await Audit.WriteAsync(db, "member.added", "user", userId.ToString(), new { role }, ct);
        var member = await Get(db, userId, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/members/{userId}", member, ct);
    }

    private static async Task<IResult> Update(Guid userId, UpdateMemberRequest body, RequestDb db, CancellationToken ct)
    {
        await Get(db, userId, ct);
        db.RequireRole("owner", "change member roles");
        var role = Roles.ValidWorkspaceRole(body.Role);
        if (role != "owner")
        {
            await EnsureAnotherOwnerAsync(db, userId, ct);
        }
        await db.ExecuteAsync("UPDATE workspace_members SET role = @role WHERE workspace_id = app_workspace_id() AND user_id = @userId", new { userId, role }, ct);
        await Audit.WriteAsync(db, "member.role_changed", "user", userId.ToString(), new { role }, ct);
        return TypedResults.Ok(await Get(db, userId, ct));
    }

    private static async Task<IResult> Remove(Guid userId, RequestDb db, CancellationToken ct)
    {
        await Get(db, userId, ct);
        db.RequireRole("owner", "remove members");
        await EnsureAnotherOwnerAsync(db, userId, ct);
        await db.ExecuteAsync("DELETE FROM workspace_members WHERE workspace_id = app_workspace_id() AND user_id = @userId", new { userId }, ct);
        await Audit.WriteAsync(db, "member.removed", "user", userId.ToString(), null, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Member> Get(RequestDb db, Guid userId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<Member>($"{Select} AND m.user_id = @userId", new { userId }, ct)
        ?? throw Problems.NotFound("The member");

    /// <summary>A workspace always keeps at least one owner.</summary>
    private static async Task EnsureAnotherOwnerAsync(RequestDb db, Guid leaving, CancellationToken ct)
    {
        // Lock the workspace's owner rows so two concurrent demotions cannot both pass the check.
        var owners = await db.QueryAsync<Guid>(
            "SELECT user_id FROM workspace_members WHERE workspace_id = app_workspace_id() AND role = 'owner' FOR UPDATE", null, ct);
        var leavingIsOwner = owners.Contains(leaving);
        var others = owners.Count(o => o != leaving);
        if (leavingIsOwner && others == 0)
        {
            throw Problems.Conflict("A workspace needs at least one owner: make someone else owner first.");
        }
    }
}
