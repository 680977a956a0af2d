using System.Net.Http.Json;
using Dapper;
using Npgsql;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Three workspaces, every tenant table, select/insert/update/delete: directly in SQL as the API's database role
/// with another workspace's context, and through the API. Nothing of another workspace is read, changed or deleted.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class IsolationTests(PlugboardServer server)
{
    private async Task<(Actor Owner, Seed.Rows Rows)[]> ThreeWorkspacesAsync()
    {
        var result = new List<(Actor, Seed.Rows)>();
        for (var i = 0; i < 3; i++)
        {
            var owner = await server.NewUserAsync();
            var ws = await server.CreateWorkspaceAsync(owner, $"Isolation {i}");
            result.Add((owner, await Seed.WorkspaceAsync(server, ws, owner.UserId)));
        }
        return result.ToArray();
    }

    private async Task<NpgsqlConnection> ApiConnectionAsync(string? workspaceId, Guid? userId, string? role)
    {
        var connection = new NpgsqlConnection(server.Settings.ApiConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync("START TRANSACTION");
        if (workspaceId is not null)
        {
            await connection.ExecuteAsync(
                "SELECT set_config('app.workspace_id', @workspaceId, true), set_config('app.user_id', @userId, true), set_config('app.workspace_role', @role, true)",
                new { workspaceId, userId = userId?.ToString(), role });
        }
        return connection;
    }

    private static string WorkspaceColumn(string table) => table == "workspaces" ? "id" : "workspace_id";

    [Fact]
    public async Task Api_role_sees_nothing_of_other_workspaces_in_any_tenant_table()
    {
        var all = await ThreeWorkspacesAsync();
        foreach (var (owner, rows) in all)
        {
            await using var connection = await ApiConnectionAsync(rows.WorkspaceId, owner.UserId, "owner");
            var others = all.Where(w => w.Rows.WorkspaceId != rows.WorkspaceId).Select(w => w.Rows.WorkspaceId).ToArray();
            foreach (var table in Seed.TenantTables)
            {
                var column = WorkspaceColumn(table);
                var foreign = await connection.ExecuteScalarAsync<long>($"SELECT count(*) FROM {table} WHERE {column} = ANY(@others)", new { others });
                Assert.True(foreign == 0, $"{table}: saw {foreign} rows of other workspaces");
                var own = await connection.ExecuteScalarAsync<long>($"SELECT count(*) FROM {table} WHERE {column} = @ws", new { ws = rows.WorkspaceId });
                Assert.True(own > 0, $"{table}: own rows must be visible (the test would prove nothing otherwise)");
            }
        }
    }

    [Fact]
    public async Task Api_role_cannot_update_or_delete_other_workspaces_rows()
    {
        var all = await ThreeWorkspacesAsync();
        var (owner, mine) = all[0];
        var others = all.Skip(1).Select(w => w.Rows.WorkspaceId).ToArray();
        var before = await CountsAsync(others);
        await using (var connection = await ApiConnectionAsync(mine.WorkspaceId, owner.UserId, "owner"))
        {
            foreach (var table in Seed.TenantTables)
            {
                var column = WorkspaceColumn(table);
                var setColumn = table switch
                {
                    // Append-only or read-only for the API: no UPDATE or DELETE grant at all.
                    "audit_log" or "file_upload_batch_failures" or "document_chunks" or "connector_stream_states" or "connector_webhook_failures" => null,
                    "pending_objects" => "", // inserted and deleted by uploads, never updated
                    "workspace_members" => "role = 'viewer'",
                    "api_keys" or "connector_templates" or "workspaces" or "workspace_api_credentials" or "connectors" => "name = 'hijacked'",
                    "imported_documents" => "title = 'hijacked'",
                    "connector_webhook_events" => "processed = true",
                    _ => "status = status",
                };
                if (setColumn is null)
                {
                    var denied = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync($"SAVEPOINT s; DELETE FROM {table}"));
                    Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
                    await connection.ExecuteAsync("ROLLBACK TO SAVEPOINT s");
                    continue;
                }
                if (setColumn.Length > 0)
                {
                    var updated = await connection.ExecuteAsync($"UPDATE {table} SET {setColumn} WHERE {column} = ANY(@others)", new { others });
                    Assert.True(updated == 0, $"{table}: updated {updated} foreign rows");
                }
                if (table is "api_keys" or "oauth_authorizations")
                {
                    // Keys are revoked, never deleted, by the API; OAuth attempts are pruned by the server: no DELETE grant at all.
                    var denied = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync($"SAVEPOINT s; DELETE FROM {table}"));
                    Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
                    await connection.ExecuteAsync("ROLLBACK TO SAVEPOINT s");
                    continue;
                }
                var deleted = await connection.ExecuteAsync($"DELETE FROM {table} WHERE {column} = ANY(@others)", new { others });
                Assert.True(deleted == 0, $"{table}: deleted {deleted} foreign rows");
            }
            await connection.ExecuteAsync("COMMIT;");
        }
        Assert.Equal(before, await CountsAsync(others));
        var hijacked = await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE name = 'hijacked' AND workspace_id = ANY(@others)", new { others });
        Assert.Equal(0, hijacked);
    }

    [Fact]
    public async Task Api_role_cannot_insert_into_another_workspace()
    {
        var all = await ThreeWorkspacesAsync();
        var (owner, mine) = all[0];
        var target = all[1].Rows;
        var inserts = new Dictionary<string, string>
        {
            ["workspaces"] = "INSERT INTO workspaces (id, name) VALUES (@other, 'x')",
            ["workspace_members"] = "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (@other, @user, 'owner')",
            ["api_keys"] = "INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash) VALUES (gen_random_uuid(), @other, @user, 'x', 'pb_zzzzzzzz', '\\x00')",
            ["audit_log"] = "INSERT INTO audit_log (id, workspace_id, actor_user_id, action, target_type) VALUES (gen_random_uuid(), @other, @user, 'x', 'x')",
            ["connector_templates"] = "INSERT INTO connector_templates (id, workspace_id, kind, slug, name, manifest) VALUES (gen_random_uuid(), @other, 'community', 'x-insert', 'x', '{}')",
            ["workspace_api_credentials"] = "INSERT INTO workspace_api_credentials (workspace_id, id, name, auth_type, encrypted_payload, key_id, masked_hint) VALUES (@other, gen_random_uuid(), 'x', 'bearer', 'pb1:k:x', 'k', 'x')",
            ["connectors"] = "INSERT INTO connectors (workspace_id, id, name) VALUES (@other, gen_random_uuid(), 'x-insert')",
            ["connector_executions"] = "INSERT INTO connector_executions (workspace_id, id, connector_id) VALUES (@other, gen_random_uuid(), @connector)",
            ["connector_sync_logs"] = "INSERT INTO connector_sync_logs (workspace_id, id, connector_id) VALUES (@other, gen_random_uuid(), @connector)",
            ["connector_webhook_events"] = "INSERT INTO connector_webhook_events (workspace_id, id, connector_id) VALUES (@other, gen_random_uuid(), @connector)",
            ["file_upload_batches"] = "INSERT INTO file_upload_batches (workspace_id, id, total_files) VALUES (@other, gen_random_uuid(), 1)",
            ["imported_documents"] = "INSERT INTO imported_documents (workspace_id, id, title) VALUES (@other, gen_random_uuid(), 'x')",
            ["file_upload_batch_failures"] = "INSERT INTO file_upload_batch_failures (workspace_id, id, batch_id, file_name, reason) VALUES (@other, gen_random_uuid(), @batch, 'x', 'x')",
            ["document_chunks"] = "INSERT INTO document_chunks (workspace_id, document_id, ordinal, content, char_start, char_end, token_count, search) VALUES (@other, @document, 9, 'x', 0, 1, 1, ''::tsvector)",
            ["connector_stream_states"] = "INSERT INTO connector_stream_states (workspace_id, connector_id, stream) VALUES (@other, @connector, 'x')",
            ["oauth_authorizations"] = "INSERT INTO oauth_authorizations (workspace_id, id, state_hash, created_by, manifest, credential_name, encrypted_payload, redirect_uri, expires_at) VALUES (@other, gen_random_uuid(), sha256('x'::bytea), @user, '{}', 'x', 'pb1:k:x', 'http://x', now())",
            ["pending_objects"] = "INSERT INTO pending_objects (object_key, workspace_id) VALUES ('workspaces/' || @other || '/documents/00000000000000000000000000000000', @other)",
            ["connector_webhook_failures"] = "INSERT INTO connector_webhook_failures (workspace_id, connector_id) VALUES (@other, @connector)",
        };
        Assert.Equal(Seed.TenantTables.Order(), inserts.Keys.Order());
        var before = await CountsAsync([target.WorkspaceId]);
        await using (var connection = await ApiConnectionAsync(mine.WorkspaceId, owner.UserId, "owner"))
        {
            foreach (var (table, sql) in inserts)
            {
                await connection.ExecuteAsync("SAVEPOINT s");
                var error = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync(sql, new { other = target.WorkspaceId, user = owner.UserId, connector = target.ConnectorId, batch = target.BatchId, document = target.DocumentId }));
                Assert.True(error.SqlState == PostgresErrorCodes.InsufficientPrivilege, $"{table}: {error.SqlState} {error.MessageText}");
                await connection.ExecuteAsync("ROLLBACK TO SAVEPOINT s");
            }
            await connection.ExecuteAsync("COMMIT;");
        }
        Assert.Equal(before, await CountsAsync([target.WorkspaceId]));
    }

    [Fact]
    public async Task No_context_means_no_rows_in_any_table()
    {
        await ThreeWorkspacesAsync();
        await using var connection = await ApiConnectionAsync(null, null, null);
        foreach (var table in Seed.TenantTables.Concat(["users", "saas_admin_users", "idempotency_keys"]))
        {
            var visible = await connection.ExecuteScalarAsync<long>($"SELECT count(*) FROM {table}");
            Assert.True(visible == 0, $"{table}: {visible} rows visible without context");
        }
        Assert.Equal(0, await connection.ExecuteAsync("UPDATE connectors SET name = 'x'"));
        Assert.Equal(0, await connection.ExecuteAsync("DELETE FROM workspace_api_credentials"));
    }

    [Fact]
    public async Task Api_role_owns_nothing_and_cannot_bypass_rls()
    {
        await using var connection = new NpgsqlConnection(server.Settings.ApiConnectionString);
        await connection.OpenAsync();
        var role = await connection.QuerySingleAsync<(bool Super, bool Bypass)>("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user");
        Assert.False(role.Super);
        Assert.False(role.Bypass);
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"));
        var unprotected = (await connection.QueryAsync<string>(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'VersionInfo' AND NOT (relrowsecurity AND relforcerowsecurity)")).ToList();
        Assert.Empty(unprotected);
        var denied = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync("SET row_security = off; SELECT count(*) FROM connectors"));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, denied.SqlState);
    }

    [Fact]
    public async Task Through_the_api_other_workspaces_answer_404_and_nothing_changes()
    {
        var all = await ThreeWorkspacesAsync();
        var (attacker, mine) = all[0];
        var victim = all[1].Rows;
        var before = await CountsAsync([victim.WorkspaceId]);
        var http = attacker.Http;
        string[] paths =
        [
            $"/v1/workspaces/{victim.WorkspaceId}", $"/v1/workspaces/{victim.WorkspaceId}/connectors", $"/v1/workspaces/{victim.WorkspaceId}/credentials",
            $"/v1/workspaces/{victim.WorkspaceId}/members", $"/v1/workspaces/{victim.WorkspaceId}/api-keys", $"/v1/workspaces/{victim.WorkspaceId}/audit-log",
            $"/v1/workspaces/{victim.WorkspaceId}/connectors/{victim.ConnectorId}", $"/v1/workspaces/{mine.WorkspaceId}/connectors/{victim.ConnectorId}",
            $"/v1/workspaces/{mine.WorkspaceId}/credentials/{victim.CredentialId}", $"/v1/workspaces/{victim.WorkspaceId}/credentials/{victim.CredentialId}",
            $"/v1/templates/{victim.TemplateId}", $"/v1/workspaces/{victim.WorkspaceId}/templates",
        ];
        foreach (var path in paths)
        {
            await (await http.GetAsync(path)).AssertProblemAsync(404, "not-found");
        }
        string[] items =
        [
            $"/v1/workspaces/{victim.WorkspaceId}", $"/v1/workspaces/{victim.WorkspaceId}/connectors/{victim.ConnectorId}",
            $"/v1/workspaces/{mine.WorkspaceId}/connectors/{victim.ConnectorId}", $"/v1/workspaces/{mine.WorkspaceId}/credentials/{victim.CredentialId}",
            $"/v1/workspaces/{victim.WorkspaceId}/credentials/{victim.CredentialId}", $"/v1/workspaces/{mine.WorkspaceId}/templates/{victim.TemplateId}",
            $"/v1/workspaces/{victim.WorkspaceId}/members/{all[1].Owner.UserId}",
        ];
        foreach (var path in items)
        {
            object body = path.Contains("/members/", StringComparison.Ordinal) ? new { role = "viewer" } : new { name = "hijacked" };
            await (await http.PatchAsync(path, HttpAssertions.Json(body))).AssertProblemAsync(404, "not-found");
            await (await http.DeleteAsync(path)).AssertProblemAsync(404, "not-found");
        }
        await (await http.PostAsJsonAsync($"/v1/workspaces/{victim.WorkspaceId}/connectors", new { name = "planted" })).AssertProblemAsync(404);
        await (await http.PostAsJsonAsync($"/v1/workspaces/{victim.WorkspaceId}/members", new { email = "evil@example.test", role = "owner" })).AssertProblemAsync(404);
        await (await http.PostAsJsonAsync($"/v1/workspaces/{mine.WorkspaceId}/connectors", new { name = "borrow", credential_id = victim.CredentialId })).AssertProblemAsync(422);
        var official = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        await (await http.PostAsJsonAsync($"/v1/templates/{official}/install", new { workspace_id = victim.WorkspaceId, credentials = new { api_key = "x" } })).AssertProblemAsync(404);
        Assert.Equal(before, await CountsAsync([victim.WorkspaceId]));
    }

    [Fact]
    public async Task A_job_enqueued_in_one_workspace_cannot_run_another_workspaces_execution()
    {
        var all = await ThreeWorkspacesAsync();
        var (attacker, mine) = all[0];
        var victim = all[1].Rows;
        var executionId = Guid.CreateVersion7();
        await server.OwnerExecuteAsync(
            "INSERT INTO connector_executions (workspace_id, id, connector_id, status) VALUES (@WorkspaceId, @executionId, @ConnectorId, 'queued')",
            new { victim.WorkspaceId, executionId, victim.ConnectorId });
        // The API role may enqueue for its own workspace only, but the payload is free text: it names the victim's execution.
        var jobId = Guid.CreateVersion7();
        await using (var connection = await ApiConnectionAsync(mine.WorkspaceId, attacker.UserId, "owner"))
        {
            await connection.ExecuteAsync(
                "INSERT INTO jobs (id, kind, payload, workspace_id, max_attempts) VALUES (@jobId, 'execution', @payload::jsonb, @workspace, 1); COMMIT",
                new { jobId, workspace = mine.WorkspaceId, payload = $$"""{"workspaceId": "{{victim.WorkspaceId}}", "connectorId": "{{victim.ConnectorId}}", "executionId": "{{executionId}}"}""" });
        }
        for (var deadline = DateTime.UtcNow.AddSeconds(30); await server.OwnerScalarAsync<string>("SELECT state FROM jobs WHERE id = @jobId", new { jobId }) != "dead";)
        {
            Assert.True(DateTime.UtcNow < deadline, "the forged job was not settled");
            await Task.Delay(50);
        }
        Assert.Equal("queued", await server.OwnerScalarAsync<string>("SELECT status FROM connector_executions WHERE id = @executionId", new { executionId }));
        Assert.Contains("another workspace", await server.OwnerScalarAsync<string>("SELECT last_error FROM jobs WHERE id = @jobId", new { jobId }), StringComparison.Ordinal);
    }

    private async Task<string> CountsAsync(string[] workspaces)
    {
        var parts = new List<string>();
        foreach (var table in Seed.TenantTables)
        {
            var column = WorkspaceColumn(table);
            var changedNames = table is "connectors" or "workspaces" or "api_keys" or "connector_templates" or "workspace_api_credentials"
                ? $" AND name <> 'hijacked'" : "";
            parts.Add($"{table}={await server.OwnerScalarAsync<long>($"SELECT count(*) FROM {table} WHERE {column} = ANY(@workspaces){changedNames}", new { workspaces })}");
        }
        return string.Join(",", parts);
    }
}
