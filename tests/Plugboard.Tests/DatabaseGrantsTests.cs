using Dapper;
using Npgsql;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// What the API must never do, refused by the database itself (column grants, triggers, function ownership), in SQL
/// as the API's role with the request context a handler would set — in the style of <see cref="IsolationTests"/>.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class DatabaseGrantsTests(PlugboardServer server)
{
    private async Task<NpgsqlConnection> ApiAsync(string workspaceId, Guid userId, string role)
    {
        var connection = new NpgsqlConnection(server.Settings.ApiConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync(
            """
            START TRANSACTION;
            SELECT set_config('app.workspace_id', @workspaceId, true), set_config('app.user_id', @userId, true), set_config('app.workspace_role', @role, true)
            """, new { workspaceId, userId = userId.ToString(), role });
        return connection;
    }

    private static async Task AssertDeniedAsync(NpgsqlConnection connection, string sql, object? args = null)
    {
        await connection.ExecuteAsync("SAVEPOINT probe");
        var denied = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync(sql, args));
        Assert.True(denied.SqlState == PostgresErrorCodes.InsufficientPrivilege, $"{sql}: {denied.SqlState} {denied.MessageText}");
        await connection.ExecuteAsync("ROLLBACK TO SAVEPOINT probe");
    }

    [Fact]
    public async Task Api_role_cannot_change_key_owner_confinement_role_or_hash_nor_unrevoke()
    {
        var owner = await server.NewUserAsync();
        var other = await server.NewUserAsync();
        var workspace = await server.CreateWorkspaceAsync(owner);
        var rows = await Seed.WorkspaceAsync(server, workspace, owner.UserId);
        var keyId = await server.OwnerScalarAsync<Guid>("SELECT id FROM api_keys WHERE workspace_id = @workspace", new { workspace });
        await using var connection = await ApiAsync(workspace, owner.UserId, "owner");
        // The policy lets an owner update this key's row; the grants do not let any column but name and revoked_at change.
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE api_keys SET name = 'renamed' WHERE id = @keyId", new { keyId }));
        foreach (var change in new[] { "user_id = @other", "workspace_id = NULL", "role = NULL", "role = 'owner'", "key_hash = '\\x00'::bytea", "expires_at = NULL", "prefix = 'pb_x'" })
        {
            await AssertDeniedAsync(connection, $"UPDATE api_keys SET {change} WHERE id = @keyId", new { keyId, other = other.UserId });
        }
        await AssertDeniedAsync(connection, "DELETE FROM api_keys WHERE id = @keyId", new { keyId });
        // It makes keys only for the current workspace and user, and cannot pre-set what the server sets later.
        const string mint = "INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash) VALUES (gen_random_uuid(), {0}, @user, 'minted', 'pb_' || left(md5(random()::text), 8), '\\x01'::bytea)";
        Assert.Equal(1, await connection.ExecuteAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, mint, "@workspace"), new { workspace, user = owner.UserId }));
        await AssertDeniedAsync(connection, string.Format(System.Globalization.CultureInfo.InvariantCulture, mint, "NULL"), new { user = owner.UserId });
        await AssertDeniedAsync(connection, string.Format(System.Globalization.CultureInfo.InvariantCulture, mint, "@workspace"), new { workspace, user = other.UserId });
        await AssertDeniedAsync(connection,
            "INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash, revoked_at) VALUES (gen_random_uuid(), @workspace, @user, 'x', 'pb_zz', '\\x02'::bytea, now())",
            new { workspace, user = owner.UserId });
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE api_keys SET revoked_at = now() WHERE id = @keyId", new { keyId }));
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = @keyId", new { keyId }));
        await AssertDeniedAsync(connection, "UPDATE api_keys SET revoked_at = NULL WHERE id = @keyId", new { keyId });
        await AssertDeniedAsync(connection, "UPDATE api_keys SET revoked_at = now() + interval '1 day' WHERE id = @keyId", new { keyId });

        // users: a display name, never an email (OIDC signs in by email); no rows made or removed by the API.
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE users SET display_name = 'Me' WHERE id = @id", new { id = owner.UserId }));
        await AssertDeniedAsync(connection, "UPDATE users SET email = 'taken@example.test' WHERE id = @id", new { id = owner.UserId });
        await AssertDeniedAsync(connection, "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'new@example.test')");
        await AssertDeniedAsync(connection, "DELETE FROM users WHERE id = @id", new { id = owner.UserId });

        // templates: editable by their workspace's admins, but the install count moves only through record_template_install.
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE connector_templates SET name = 'Edited' WHERE id = @id", new { id = rows.TemplateId }));
        await AssertDeniedAsync(connection, "UPDATE connector_templates SET install_count = 1000000 WHERE id = @id", new { id = rows.TemplateId });
        await AssertDeniedAsync(connection,
            "INSERT INTO connector_templates (id, workspace_id, kind, slug, name, manifest, install_count) VALUES (gen_random_uuid(), @workspace, 'community', 'popular', 'P', '{}', 1000000)",
            new { workspace });

        // Ciphertexts are written by the API, never read back.
        await AssertDeniedAsync(connection, "SELECT encrypted_payload FROM workspace_api_credentials");
        await AssertDeniedAsync(connection, "SELECT * FROM workspace_api_credentials");
        await AssertDeniedAsync(connection, "SELECT webhook_secret FROM connectors");
        await AssertDeniedAsync(connection, "SELECT webhook_secret_previous FROM connectors");
        Assert.Equal(1, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE masked_hint IS NOT NULL"));
        Assert.False(await connection.ExecuteScalarAsync<bool>("SELECT webhook_secret_set FROM connectors WHERE id = @id", new { id = rows.ConnectorId }));
        await connection.ExecuteAsync("ROLLBACK");
    }

    [Fact]
    public async Task Security_definer_functions_belong_to_a_role_that_cannot_log_in_and_answer_only_for_the_caller()
    {
        var functions = (await new NpgsqlConnection(server.Settings.OwnerConnectionString).QueryAsync<(string Name, string Owner, bool CanLogin, string[]? Config, string? Acl)>(
            """
            SELECT p.proname, r.rolname, r.rolcanlogin, p.proconfig, p.proacl::text
              FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
            """)).ToList();
        Assert.Equal(["authenticate_api_key", "authenticate_dashboard_session", "end_dashboard_session", "ensure_user", "find_user_by_email",
            "record_template_install", "start_dashboard_session", "start_user_dashboard_session", "workspace_role_of"], functions.Select(f => f.Name).Order());
        // Those called on every request keep their plans per session: PL/pgSQL, never a (re-planned) SQL body.
        Assert.Equal(["plpgsql", "plpgsql", "plpgsql", "plpgsql"], await new NpgsqlConnection(server.Settings.OwnerConnectionString).QueryAsync<string>(
            """
            SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
             WHERE p.pronamespace = 'public'::regnamespace
               AND p.proname IN ('authenticate_api_key', 'authenticate_dashboard_session', 'workspace_role_of', 'find_user_by_email')
            """));
        foreach (var f in functions)
        {
            Assert.Equal("plugboard_definer", f.Owner);
            Assert.False(f.CanLogin);
            Assert.Contains("search_path=public, pg_temp", f.Config ?? []);
            // Executable by the API role only: not PUBLIC (an ACL entry "=X/…"), not the workers' login role.
            Assert.Contains("plugboard_api=X/plugboard_definer", f.Acl, StringComparison.Ordinal);
            Assert.DoesNotContain("plugboard_service=", f.Acl, StringComparison.Ordinal);
            Assert.DoesNotMatch(@"[{,]=X", f.Acl!);
        }

        var owner = await server.NewUserAsync();
        var outsider = await server.NewUserAsync();
        var workspace = await server.CreateWorkspaceAsync(owner);
        await using var connection = await ApiAsync(workspace, outsider.UserId, "viewer");
        // workspace_role_of answers only for the user in the request context.
        Assert.Null(await connection.ExecuteScalarAsync<string?>("SELECT workspace_role_of(@owner, @workspace)", new { owner = owner.UserId, workspace }));
        await connection.ExecuteAsync("SELECT set_config('app.user_id', @id, true)", new { id = owner.UserId.ToString() });
        Assert.Equal("owner", await connection.ExecuteScalarAsync<string?>("SELECT workspace_role_of(@owner, @workspace)", new { owner = owner.UserId, workspace }));
        // The install counter moves only for an admin of the current workspace.
        var template = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        var before = await server.OwnerScalarAsync<long>("SELECT install_count FROM connector_templates WHERE id = @template", new { template });
        await connection.ExecuteAsync("SELECT set_config('app.workspace_role', 'viewer', true); SELECT record_template_install(@template)", new { template });
        await connection.ExecuteAsync("COMMIT");
        Assert.Equal(before, await server.OwnerScalarAsync<long>("SELECT install_count FROM connector_templates WHERE id = @template", new { template }));

        await using var service = new NpgsqlConnection(server.Settings.ServiceConnectionString);
        await service.OpenAsync();
        var denied = await Assert.ThrowsAsync<PostgresException>(() => service.ExecuteAsync("SELECT * FROM authenticate_api_key('\\x00'::bytea)"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
        var schema = await Assert.ThrowsAsync<PostgresException>(() => service.ExecuteAsync("CREATE TABLE public.planted (x int)"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, schema.SqlState);
    }
}
