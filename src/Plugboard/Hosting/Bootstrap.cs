using Dapper;
using Plugboard.Data;
using Plugboard.Features.Workspaces;
using Plugboard.Security;

namespace Plugboard.Hosting;

/// <summary>First start: a platform owner, a first workspace they own, and their API key (written once to bootstrap.key).</summary>
public static class Bootstrap
{
    public sealed record Result(bool Created, string? ApiKey, string? WorkspaceId);

    public static async Task<Result> EnsureOwnerAsync(Db db, string home, string ownerEmail, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // One bootstrap at a time, even when several processes start together.
        await connection.ExecuteAsync(new CommandDefinition("SELECT pg_advisory_xact_lock(7315001)", transaction: tx, cancellationToken: ct));
        var hasOwner = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "SELECT EXISTS (SELECT 1 FROM saas_admin_users WHERE role = 'owner')", transaction: tx, cancellationToken: ct));
        if (hasOwner)
        {
            return new Result(false, null, null);
        }
        var userId = Guid.CreateVersion7();
        var workspaceId = WorkspacesApi.NewWorkspaceId();
        var (key, prefix, hash) = ApiKeys.Generate();
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO users (id, email, display_name) VALUES (@userId, @email, 'Platform owner')
                ON CONFLICT (email) DO NOTHING;
            INSERT INTO saas_admin_users (user_id, role) SELECT id, 'owner' FROM users WHERE email = @email;
            INSERT INTO workspaces (id, name, created_by) SELECT @workspaceId, 'Default workspace', id FROM users WHERE email = @email;
            INSERT INTO workspace_members (workspace_id, user_id, role) SELECT @workspaceId, id, 'owner' FROM users WHERE email = @email;
            INSERT INTO api_keys (id, user_id, name, prefix, key_hash) SELECT @keyId, id, 'bootstrap', @prefix, @hash FROM users WHERE email = @email;
            """,
            new { userId, email = ownerEmail.ToLowerInvariant(), workspaceId, keyId = Guid.CreateVersion7(), prefix, hash }, tx, cancellationToken: ct));
        Directory.CreateDirectory(home);
        EmbeddedPostgres.WritePrivate(Path.Combine(home, "bootstrap.key"), key + "\n");
        await tx.CommitAsync(ct);
        return new Result(true, key, workspaceId);
    }

    /// <summary>`plugboard keys create`: a personal key for a user, optionally confined to one workspace and capped to a role.</summary>
    public static async Task<string> CreateKeyAsync(Db db, string email, string name, string? workspaceId, string? role, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        var userId = await connection.ExecuteScalarAsync<Guid?>(new CommandDefinition("SELECT id FROM users WHERE email = lower(@email)", new { email }, cancellationToken: ct))
            ?? throw new InvalidOperationException($"No user with email {email}: add them to a workspace first (POST /v1/workspaces/{{id}}/members).");
        if (workspaceId is not null)
        {
            var member = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                "SELECT EXISTS (SELECT 1 FROM workspace_members WHERE user_id = @userId AND workspace_id = @workspaceId)", new { userId, workspaceId }, cancellationToken: ct));
            if (!member)
            {
                throw new InvalidOperationException($"{email} is not a member of workspace {workspaceId}.");
            }
        }
        if (role is not null && !Http.Roles.Workspace.Contains(role))
        {
            throw new InvalidOperationException($"--role must be one of: {string.Join(", ", Http.Roles.Workspace)}.");
        }
        var (key, prefix, hash) = ApiKeys.Generate();
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash, role) VALUES (@id, @workspaceId, @userId, @name, @prefix, @hash, @role)",
            new { id = Guid.CreateVersion7(), workspaceId, userId, name, prefix, hash, role }, cancellationToken: ct));
        return key;
    }
}
