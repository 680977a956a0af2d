using Plugboard.Data;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.ApiKeys;

public sealed record CreateApiKeyRequest(string Name, string? Role = null, DateTimeOffset? ExpiresAt = null);

public sealed record ApiKey(Guid Id, Guid UserId, string? WorkspaceId, string Name, string Prefix, string? Role,
    DateTime? ExpiresAt, DateTime? LastUsedAt, DateTime? RevokedAt, DateTime CreatedAt);

/// <summary>The one answer that carries the key itself: it is shown once and never again.</summary>
public sealed record CreatedApiKey(Guid Id, Guid UserId, string? WorkspaceId, string Name, string Prefix, string? Role,
    DateTime? ExpiresAt, DateTime CreatedAt, string Key);

public sealed record Principal(Guid UserId, string Email, string? DisplayName, string? PlatformRole, Guid? KeyId);

public static class ApiKeysApi
{
    public static void Map(RouteGroupBuilder v1, RouteGroupBuilder workspace)
    {
        var me = v1.MapGroup("/me").WithTags("API keys");
        me.MapGet("", Me).Produces<Principal>();
        me.MapGet("/api-keys", ListMine).Produces<Page<ApiKey>>();
        me.MapDelete("/api-keys/{keyId:guid}", RevokeMine).Produces(204);

        var keys = workspace.MapGroup("/api-keys").WithTags("API keys");
        keys.MapGet("", List).Produces<Page<ApiKey>>();
        keys.MapPost("", Create).Produces<CreatedApiKey>(201);
        keys.MapDelete("/{keyId:guid}", Revoke).Produces(204);
    }

    private const string Columns = "id, user_id, workspace_id, name, prefix, role, expires_at, last_used_at, revoked_at, created_at";

    /// <summary>Who the caller is: their user and platform role, and the key they used.</summary>
    private static async Task<IResult> Me(RequestDb db, CancellationToken ct) =>
        TypedResults.Ok(await db.QuerySingleOrDefaultAsync<Principal>(
            "SELECT u.id AS user_id, u.email, u.display_name, @platformRole AS platform_role, @keyId AS key_id FROM users u WHERE u.id = app_user_id()",
            new { platformRole = db.PlatformRole, keyId = db.KeyId }, ct));

    /// <summary>The caller's own keys, personal and workspace-confined; through a confined key, only the keys
    /// confined to the same workspace.</summary>
    private static async Task<IResult> ListMine(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        RequireNotCappedPersonal(db);
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<ApiKey>(
            $"""
            SELECT {Columns} FROM api_keys
             WHERE user_id = app_user_id() AND (@keyWorkspace::text IS NULL OR workspace_id = @keyWorkspace)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """,
            new { after = Paging.AfterId(cursor), take = take + 1, keyWorkspace = db.KeyWorkspaceId }, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, k => k.Id));
    }

    /// <summary>Revokes one of the caller's keys (a confined key reaches only its workspace's); the audit row lands in
    /// the revoked key's workspace log, or the platform log for a personal key.</summary>
    private static async Task<IResult> RevokeMine(Guid keyId, RequestDb db, CancellationToken ct)
    {
        RequireNotCappedPersonal(db);
        var revoked = await db.QuerySingleOrDefaultAsync<RevokedKey>(
            """
            UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE id = @keyId AND user_id = app_user_id() AND (@keyWorkspace::text IS NULL OR workspace_id = @keyWorkspace)
            RETURNING workspace_id, prefix
            """, new { keyId, keyWorkspace = db.KeyWorkspaceId }, ct)
            ?? throw Problems.NotFound("The API key");
        var inWorkspace = revoked.WorkspaceId is { } workspaceId && await db.EnterWorkspaceAsync(workspaceId, ct) is not null;
        await Audit.WriteAsync(db, "api_key.revoked", "api_key", keyId.ToString(), new { revoked.Prefix }, ct, platform: !inWorkspace);
        return TypedResults.NoContent();
    }

    private sealed record RevokedKey(string? WorkspaceId, string Prefix);

    /// <summary>A capped key that is not confined (`keys create --role` without `--workspace`) would otherwise reach every
    /// key of its user, uncapped ones included: it manages no keys.</summary>
    private static void RequireNotCappedPersonal(RequestDb db)
    {
        if (db.KeyRole is not null && db.KeyWorkspaceId is null)
        {
            throw Problems.Forbidden("This API key is capped to a role, so it cannot list or revoke your keys; use an uncapped personal key.");
        }
    }

    /// <summary>Keys confined to this workspace: your own, or everyone's for owners and admins.</summary>
    private static async Task<IResult> List(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<ApiKey>(
            $"SELECT {Columns} FROM api_keys WHERE workspace_id = app_workspace_id() AND (@after::uuid IS NULL OR id < @after) ORDER BY id DESC LIMIT @take",
            new { after = Paging.AfterId(cursor), take = take + 1 }, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, k => k.Id));
    }

    private static async Task<IResult> Create(CreateApiKeyRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var name = Validate.Name(body.Name);
        var role = body.Role is null ? null : Roles.ValidWorkspaceRole(body.Role);
        // A key made with a capped key is capped too: it never holds more than the key that made it.
        if (role is null && db.KeyRole is not null)
        {
            role = db.WorkspaceRole;
        }
        if (role is not null && !Roles.AtLeast(db.WorkspaceRole, role))
        {
            throw Problems.Forbidden($"A key cannot hold more than your own role ({db.WorkspaceRole}).");
        }
        if (body.ExpiresAt is { } expires && expires <= DateTimeOffset.UtcNow)
        {
            throw Problems.Invalid("expires_at must be in the future.", "/expires_at");
        }
        // Nor does it outlive it: a key made with an expiring key expires with it at the latest.
        var expiresAt = body.ExpiresAt?.UtcDateTime;
        if (db.KeyExpiresAt is { } parentExpiry)
        {
            var parent = DateTime.SpecifyKind(parentExpiry, DateTimeKind.Utc);
            if (expiresAt > parent)
            {
                throw Problems.Forbidden($"A key cannot outlive the key that makes it: this key expires at {parent:O}.");
            }
            expiresAt ??= parent;
        }
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var (key, prefix, hash) = Security.ApiKeys.Generate();
        var id = Guid.CreateVersion7();
        var row = await db.QuerySingleOrDefaultAsync<ApiKey>(
            $"""
            INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash, role, expires_at)
            VALUES (@id, app_workspace_id(), app_user_id(), @name, @prefix, @hash, @role, @expiresAt)
            RETURNING {Columns}
            """, new { id, name, prefix, hash, role, expiresAt }, ct);
        await Audit.WriteAsync(db, "api_key.created", "api_key", id.ToString(), new { name, prefix, role }, ct);
        // The key itself is deliberately not stored for idempotent replay: a replay answers without it.
        await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/api-keys/{id}", row!, ct);
        return TypedResults.Created($"/v1/workspaces/{db.WorkspaceId}/api-keys/{id}",
            new CreatedApiKey(row!.Id, row.UserId, row.WorkspaceId, row.Name, row.Prefix, row.Role, row.ExpiresAt, row.CreatedAt, key));
    }

    private static async Task<IResult> Revoke(Guid keyId, RequestDb db, CancellationToken ct)
    {
        var key = await db.QuerySingleOrDefaultAsync<ApiKey>($"SELECT {Columns} FROM api_keys WHERE id = @keyId AND workspace_id = app_workspace_id()", new { keyId }, ct)
            ?? throw Problems.NotFound("The API key");
        if (key.UserId != db.UserId)
        {
            db.RequireRole("admin", "revoke other people's keys");
        }
        await db.ExecuteAsync("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = @keyId", new { keyId }, ct);
        await Audit.WriteAsync(db, "api_key.revoked", "api_key", keyId.ToString(), new { key.Prefix }, ct);
        return TypedResults.NoContent();
    }
}
