using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Test runs (the studio's): a draft manifest run once with a connector's credential and config, without
/// changing the connector; admins only, enforced by the handler and by the database.</summary>
[Collection(ServerCollection.Name)]
public sealed class TestRunTests(PlugboardServer server)
{
    private static JsonObject Draft(string detailPath = "/records/{{ steps.list.first }}") => JsonNode.Parse($$$"""
        {
          "version": 1,
          "base_url": "{{ config.base_url }}",
          "auth": { "type": "api_key", "in": "header", "name": "X-API-Key", "value": "{{ credentials.api_key }}" },
          "config": { "base_url": { "type": "string", "required": true } },
          "inputs": { "suffix": { "type": "string", "default": "" } },
          "steps": [
            { "id": "list", "request": { "method": "GET", "path": "/records" }, "extract": { "first": "$.data[0].id" } },
            { "id": "detail", "request": { "method": "GET", "path": "{{{detailPath}}}" }, "extract": { "title": "$.title" } }
          ],
          "output": { "title": "{{ steps.detail.title }}{{ inputs.suffix }}" }
        }
        """)!.AsObject();

    private async Task<(TeamWorkspace Team, string ConnectorId, Stub Stub)> InstalledAsync()
    {
        var team = await server.TeamAsync();
        var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/records", () => Results.Json(new { data = new[] { new { id = "r7", title = "Listed" } } }));
            app.MapGet("/records/r7", () => Results.Json(new { title = "Seventh record" }));
        });
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key' AND workspace_id IS NULL");
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install",
            new { workspace_id = team.Id, name = "Records", credentials = new { api_key = server.Canary }, config = new { base_url = stub.Url } })).AssertStatusAsync(201);
        return (team, connector.GetProperty("id").GetString()!, stub);
    }

    [Fact]
    public async Task A_draft_runs_with_the_connectors_credential_and_config_and_leaves_the_connector_as_it_was()
    {
        var (team, connectorId, stub) = await InstalledAsync();
        await using var _ = stub;
        var connectorUrl = $"/v1/workspaces/{team.Id}/connectors/{connectorId}";
        var before = await (await team.Admin.Http.GetAsync(connectorUrl)).AssertStatusAsync(200);

        var response = await team.Admin.Http.PostAsJsonAsync($"{connectorUrl}/test-runs", new { manifest = Draft(), inputs = new { suffix = "!" } });
        var accepted = await response.AssertStatusAsync(202);
        Assert.Equal("test", accepted.GetProperty("trigger").GetString());
        var run = await ExecutionTests.WaitForEndAsync(team.Admin, response.Headers.Location!.ToString());
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal("Seventh record!", run.GetProperty("output").GetProperty("title").GetString());
        Assert.Equal(["list", "detail"], run.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("step_id").GetString()));
        Assert.All(stub.Requests, r => Assert.Equal(server.Canary, r.Headers.GetValueOrDefault("X-API-Key")));
        Assert.DoesNotContain(server.Canary, run.GetRawText());

        // The connector still has the template's manifest (with its stream), and its runs list tells test runs apart.
        var after = await (await team.Admin.Http.GetAsync(connectorUrl)).AssertStatusAsync(200);
        Assert.Equal(before.GetProperty("manifest").GetRawText(), after.GetProperty("manifest").GetRawText());
        var tests = await (await team.Member.Http.GetAsync($"{connectorUrl}/executions?trigger=test")).AssertStatusAsync(200);
        Assert.Single(tests.GetProperty("items").EnumerateArray());
        var api = await (await team.Member.Http.GetAsync($"{connectorUrl}/executions?trigger=api")).AssertStatusAsync(200);
        Assert.Empty(api.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_failing_test_run_does_not_count_as_the_connectors_error()
    {
        var (team, connectorId, stub) = await InstalledAsync();
        await using var _ = stub;
        var connectorUrl = $"/v1/workspaces/{team.Id}/connectors/{connectorId}";
        var response = await team.Admin.Http.PostAsJsonAsync($"{connectorUrl}/test-runs", new { manifest = Draft("/missing") });
        await response.AssertStatusAsync(202);
        var run = await ExecutionTests.WaitForEndAsync(team.Admin, response.Headers.Location!.ToString());
        Assert.Equal("failed", run.GetProperty("status").GetString());
        var connector = await (await team.Admin.Http.GetAsync(connectorUrl)).AssertStatusAsync(200);
        Assert.Equal(0, connector.GetProperty("error_count").GetInt32());
        Assert.Equal(JsonValueKind.Null, connector.GetProperty("last_error").ValueKind);
    }

    [Fact]
    public async Task Only_admins_test_run_and_bad_drafts_are_refused_before_anything_is_queued()
    {
        var (team, connectorId, stub) = await InstalledAsync();
        await using var _ = stub;
        var url = $"/v1/workspaces/{team.Id}/connectors/{connectorId}/test-runs";
        await (await team.Member.Http.PostAsJsonAsync(url, new { manifest = Draft() })).AssertProblemAsync(403);
        await (await team.Viewer.Http.PostAsJsonAsync(url, new { manifest = Draft() })).AssertProblemAsync(403);

        var secret = Draft();
        secret["steps"]![0]!["request"]!["headers"] = new JsonObject { ["Authorization"] = "Bearer ghp_abcdefghijklmnopqrstuvwxyz0123456789" };
        await (await team.Admin.Http.PostAsJsonAsync(url, new { manifest = secret })).AssertProblemAsync(422, "literal-secret");
        var invalid = Draft();
        invalid["steps"]![1]!["request"]!["method"] = "FETCH";
        var problem = await (await team.Admin.Http.PostAsJsonAsync(url, new { manifest = invalid })).AssertProblemAsync(422, "manifest-invalid");
        Assert.Contains("/steps/1/request/method", problem.GetRawText(), StringComparison.Ordinal);
        var undeclared = Draft();
        undeclared["config"] = new JsonObject(); // the connector's config has base_url, which this draft does not declare
        await (await team.Admin.Http.PostAsJsonAsync(url, new { manifest = undeclared })).AssertProblemAsync(422, "config-invalid");
        await (await team.Admin.Http.PostAsJsonAsync(url, new { manifest = Draft(), inputs = new { nope = 1 } })).AssertProblemAsync(422);
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{Guid.NewGuid()}/test-runs", new { manifest = Draft() })).AssertProblemAsync(404);
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_executions WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Empty(stub.Requests);
    }

    [Fact]
    public async Task The_database_refuses_a_members_test_run_and_any_later_change_of_an_executions_manifest()
    {
        var (team, connectorId, stub) = await InstalledAsync();
        await using var _ = stub;
        await using var connection = new NpgsqlConnection(server.Settings.ApiConnectionString);
        await connection.OpenAsync();
        await connection.ExecuteAsync("START TRANSACTION"); // the request context below lasts for this transaction only
        async Task AsAsync(string role) => await connection.ExecuteAsync(
            "SELECT set_config('app.workspace_id', @ws, true), set_config('app.user_id', @user, true), set_config('app.workspace_role', @role, true)",
            new { ws = team.Id, user = team.Owner.UserId.ToString(), role });
        async Task DeniedAsync(string sql, object args)
        {
            await connection.ExecuteAsync("SAVEPOINT probe");
            var denied = await Assert.ThrowsAsync<PostgresException>(() => connection.ExecuteAsync(sql, args));
            Assert.True(denied.SqlState == PostgresErrorCodes.InsufficientPrivilege, $"{sql}: {denied.SqlState} {denied.MessageText}");
            await connection.ExecuteAsync("ROLLBACK TO SAVEPOINT probe");
        }
        const string insert = """
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, trigger, inputs, manifest)
            VALUES (@ws, gen_random_uuid(), @connectorId::uuid, 'queued', 'test', '{}', @manifest::jsonb) RETURNING id
            """;
        var args = new { ws = team.Id, connectorId, manifest = Draft().ToJsonString() };
        await AsAsync("member");
        await DeniedAsync(insert, args);
        await AsAsync("admin");
        var id = await connection.ExecuteScalarAsync<Guid>(insert, args);
        foreach (var change in new[] { "manifest = '{}'::jsonb", "trigger = 'api', manifest = NULL", "inputs = '{\"a\":1}'::jsonb" })
        {
            await DeniedAsync($"UPDATE connector_executions SET {change} WHERE id = @id", new { id });
        }
        Assert.Equal(1, await connection.ExecuteAsync("UPDATE connector_executions SET cancel_requested_at = now(), status = 'cancelled', finished_at = now() WHERE id = @id", new { id }));
        await connection.ExecuteAsync("ROLLBACK");
    }
}
