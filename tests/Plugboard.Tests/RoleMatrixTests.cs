using System.Net.Http.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Each role × each endpoint gets exactly the answer the rules give: viewers read; members read and run;
/// admins and owners change connectors, credentials and templates; owners manage members and delete the workspace.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RoleMatrixTests(PlugboardServer server)
{
    private static readonly string[] WorkspaceRoles = ["viewer", "member", "admin", "owner"];

    internal delegate Task<HttpResponseMessage> Call(TeamWorkspace team, Actor actor);

    private static async Task<string> CreateAsync(Actor owner, string path, object body)
    {
        var response = await owner.Http.PostAsJsonAsync(path, body);
        var json = await response.AssertStatusAsync(201);
        return (json.TryGetProperty("id", out var id) ? id : json.GetProperty("user_id")).GetString()!;
    }

    private static Task<string> NewConnector(TeamWorkspace t) => CreateAsync(t.Owner, $"/v1/workspaces/{t.Id}/connectors", new { name = "c-" + Guid.NewGuid() });

    private static Task<string> NewCredential(TeamWorkspace t) =>
        CreateAsync(t.Owner, $"/v1/workspaces/{t.Id}/credentials", new { name = "k-" + Guid.NewGuid(), auth_type = "bearer", secret = new { token = "t0ps3cret-value" } });

    internal static readonly (string Name, string Minimum, Call Call)[] WorkspaceEndpoints =
    [
        ("GET workspace", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}")),
        ("PATCH workspace", "admin", (t, a) => a.Http.PatchAsync($"/v1/workspaces/{t.Id}", HttpAssertions.Json(new { name = "renamed" }))),
        ("GET members", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/members")),
        ("POST members", "owner", (t, a) => a.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/members", new { email = $"{Guid.NewGuid():N}@example.test", role = "viewer" })),
        ("PATCH member", "owner", (t, a) => a.Http.PatchAsync($"/v1/workspaces/{t.Id}/members/{t.Viewer.UserId}", HttpAssertions.Json(new { role = "viewer" }))),
        ("DELETE member", "owner", async (t, a) =>
        {
            var extra = await CreateAsync(t.Owner, $"/v1/workspaces/{t.Id}/members", new { email = $"{Guid.NewGuid():N}@example.test", role = "member" });
            return await a.Http.DeleteAsync($"/v1/workspaces/{t.Id}/members/{extra.Trim('"')}");
        }),
        ("GET api-keys", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/api-keys")),
        ("POST api-keys", "viewer", (t, a) => a.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/api-keys", new { name = "mine" })),
        ("GET credentials", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/credentials")),
        ("GET credential", "viewer", async (t, a) => await a.Http.GetAsync($"/v1/workspaces/{t.Id}/credentials/{await NewCredential(t)}")),
        ("POST credentials", "admin", (t, a) => a.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/credentials", new { name = "n-" + Guid.NewGuid(), auth_type = "api_key", secret = new { api_key = "abc" } })),
        ("PATCH credential", "admin", async (t, a) => await a.Http.PatchAsync($"/v1/workspaces/{t.Id}/credentials/{await NewCredential(t)}", HttpAssertions.Json(new { secret = new { token = "rotated" } }))),
        ("DELETE credential", "admin", async (t, a) => await a.Http.DeleteAsync($"/v1/workspaces/{t.Id}/credentials/{await NewCredential(t)}")),
        ("GET connectors", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/connectors")),
        ("GET connector", "viewer", async (t, a) => await a.Http.GetAsync($"/v1/workspaces/{t.Id}/connectors/{await NewConnector(t)}")),
        ("POST connectors", "admin", (t, a) => a.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/connectors", new { name = "n-" + Guid.NewGuid() })),
        ("PATCH connector", "admin", async (t, a) => await a.Http.PatchAsync($"/v1/workspaces/{t.Id}/connectors/{await NewConnector(t)}", HttpAssertions.Json(new { is_active = false }))),
        ("DELETE connector", "admin", async (t, a) => await a.Http.DeleteAsync($"/v1/workspaces/{t.Id}/connectors/{await NewConnector(t)}")),
        ("GET community templates", "viewer", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/templates")),
        ("POST community template", "admin", (t, a) => a.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/templates", new { slug = "t-" + Guid.NewGuid().ToString("N")[..12], name = "T", manifest = TestManifests.Minimal() })),
        ("GET audit-log", "admin", (t, a) => a.Http.GetAsync($"/v1/workspaces/{t.Id}/audit-log")),
        ("POST install", "admin", async (t, a) =>
        {
            var official = await ServerRef!.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
            return await a.Http.PostAsJsonAsync($"/v1/templates/{official}/install", new { workspace_id = t.Id, name = "i-" + Guid.NewGuid(), credentials = new { api_key = "k" }, config = new { base_url = "https://api.example.test" } });
        }),
    ];

    private static PlugboardServer? ServerRef;

    [Fact]
    public async Task Every_workspace_endpoint_answers_each_role_as_the_rules_say()
    {
        ServerRef = server;
        var team = await server.TeamAsync();
        var failures = new List<string>();
        foreach (var (name, minimum, call) in WorkspaceEndpoints)
        {
            foreach (var role in WorkspaceRoles)
            {
                var response = await call(team, team.As(role));
                var allowed = Array.IndexOf(WorkspaceRoles, role) >= Array.IndexOf(WorkspaceRoles, minimum);
                var status = (int)response.StatusCode;
                if (allowed ? status is < 200 or >= 300 : status != 403)
                {
                    failures.Add($"{name} as {role}: expected {(allowed ? "2xx" : "403")}, got {status} {await response.Content.ReadAsStringAsync()}");
                }
                else if (!allowed)
                {
                    await response.AssertProblemAsync(403, "forbidden");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task Only_owners_delete_the_workspace()
    {
        foreach (var role in WorkspaceRoles)
        {
            var team = await server.TeamAsync();
            var response = await team.As(role).Http.DeleteAsync($"/v1/workspaces/{team.Id}");
            if (role == "owner")
            {
                await response.AssertStatusAsync(204);
                Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspaces WHERE id = @id", new { id = team.Id }));
                Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_members WHERE workspace_id = @id", new { id = team.Id }));
            }
            else
            {
                await response.AssertProblemAsync(403, "forbidden");
                Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspaces WHERE id = @id", new { id = team.Id }));
            }
        }
    }

    private static readonly string?[] PlatformRoles = [null, "developer", "admin", "owner"];

    [Fact]
    public async Task Platform_endpoints_answer_each_platform_role_as_the_rules_say()
    {
        var actors = new Dictionary<string, Actor>();
        foreach (var role in PlatformRoles)
        {
            actors[role ?? "none"] = await server.NewUserAsync(role);
        }
        async Task<string> DraftAsync()
        {
            var response = await server.PlatformOwner.Http.PostAsJsonAsync("/v1/admin/templates",
                new { slug = "p-" + Guid.NewGuid().ToString("N")[..12], name = "P", manifest = TestManifests.Minimal() });
            return (await response.AssertStatusAsync(201)).GetProperty("id").GetString()!;
        }
        var endpoints = new (string Name, string Minimum, Func<Actor, Task<HttpResponseMessage>> Call)[]
        {
            ("GET admin templates", "developer", a => a.Http.GetAsync("/v1/admin/templates")),
            ("POST official template", "developer", a => a.Http.PostAsJsonAsync("/v1/admin/templates", new { slug = "o-" + Guid.NewGuid().ToString("N")[..12], name = "O", manifest = TestManifests.Minimal() })),
            ("PATCH official template", "developer", async a => await a.Http.PatchAsync($"/v1/admin/templates/{await DraftAsync()}", HttpAssertions.Json(new { description = "better" }))),
            ("publish", "admin", async a => await a.Http.PostAsync($"/v1/admin/templates/{await DraftAsync()}/publish", null)),
            ("archive", "admin", async a => await a.Http.PostAsync($"/v1/admin/templates/{await DraftAsync()}/archive", null)),
            ("reject", "admin", async a => await a.Http.PostAsJsonAsync($"/v1/admin/templates/{await DraftAsync()}/reject", new { reason = "incomplete" })),
            ("feature", "admin", async a =>
            {
                var id = await DraftAsync();
                await (await server.PlatformOwner.Http.PostAsync($"/v1/admin/templates/{id}/publish", null)).AssertStatusAsync(200);
                return await a.Http.PostAsJsonAsync($"/v1/admin/templates/{id}/feature", new { featured = true });
            }),
            ("GET platform users", "admin", a => a.Http.GetAsync("/v1/admin/users")),
            ("PUT developer", "admin", a => a.Http.PutAsJsonAsync("/v1/admin/users", new { email = $"{Guid.NewGuid():N}@example.test", role = "developer" })),
            ("PUT admin", "owner", a => a.Http.PutAsJsonAsync("/v1/admin/users", new { email = $"{Guid.NewGuid():N}@example.test", role = "admin" })),
            ("GET platform audit", "admin", a => a.Http.GetAsync("/v1/admin/audit-log")),
        };
        string[] order = ["none", "developer", "admin", "owner"];
        var failures = new List<string>();
        foreach (var (name, minimum, call) in endpoints)
        {
            foreach (var role in order)
            {
                var response = await call(actors[role]);
                var allowed = Array.IndexOf(order, role) >= Array.IndexOf(order, minimum);
                var status = (int)response.StatusCode;
                if (allowed ? status is < 200 or >= 300 : status != 403)
                {
                    failures.Add($"{name} as {role}: expected {(allowed ? "2xx" : "403")}, got {status} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task A_key_capped_to_viewer_cannot_write_even_for_an_owner()
    {
        var team = await server.TeamAsync();
        var created = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "read-only", role = "viewer" })).AssertStatusAsync(201);
        var key = created.GetProperty("key").GetString()!;
        using var readOnly = server.Client(key);
        await (await readOnly.GetAsync($"/v1/workspaces/{team.Id}/connectors")).AssertStatusAsync(200);
        await (await readOnly.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "nope" })).AssertProblemAsync(403, "forbidden");
        // Confined to this workspace: another workspace of the same owner is invisible, and no new workspaces.
        var other = await server.CreateWorkspaceAsync(team.Owner, "Other");
        await (await readOnly.GetAsync($"/v1/workspaces/{other}")).AssertProblemAsync(404, "not-found");
        await (await readOnly.PostAsJsonAsync("/v1/workspaces", new { name = "sneaky" })).AssertProblemAsync(403, "forbidden");
        // A member cannot mint a key above their own role.
        await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "escalate", role = "owner" })).AssertProblemAsync(403, "forbidden");
    }

    private async Task<Actor> ConfinedKeyAsync(Actor user, string workspaceId, string role, DateTimeOffset? expiresAt = null)
    {
        var created = await (await user.Http.PostAsJsonAsync($"/v1/workspaces/{workspaceId}/api-keys", new { name = "confined-" + role, role, expires_at = expiresAt }))
            .AssertStatusAsync(201);
        var key = created.GetProperty("key").GetString()!;
        return new Actor(user.UserId, user.Email, key, server.Client(key));
    }

    [Fact]
    public async Task A_confined_viewer_key_of_a_platform_owner_has_exactly_a_workspace_viewers_rights()
    {
        ServerRef = server;
        var team = await server.TeamAsync();
        await server.OwnerExecuteAsync("INSERT INTO saas_admin_users (user_id, role) VALUES (@id, 'owner')", new { id = team.Owner.UserId });
        var platformOwnersViewerKey = await ConfinedKeyAsync(team.Owner, team.Id, "viewer");
        var viewersViewerKey = await ConfinedKeyAsync(team.Viewer, team.Id, "viewer");
        var otherWorkspace = await server.CreateWorkspaceAsync(team.Owner, "Owner's other workspace");

        // Every workspace endpoint: allowed exactly where a viewer is allowed.
        var failures = new List<string>();
        foreach (var (name, minimum, call) in WorkspaceEndpoints)
        {
            var status = (int)(await call(team, platformOwnersViewerKey)).StatusCode;
            if (minimum == "viewer" ? status is < 200 or >= 300 : status != 403)
            {
                failures.Add($"{name}: expected {(minimum == "viewer" ? "2xx" : "403")}, got {status}");
            }
        }

        // Every mapped route: the same answer as a plain viewer's confined key (platform routes included: no platform role).
        var routes = server.Service<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith("/v1", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Select(m => (Method: m, Pattern: e.RoutePattern.RawText!)))
            .ToList();
        Assert.True(routes.Count >= 35, $"only {routes.Count} routes");
        var draft = (await (await server.PlatformOwner.Http.PostAsJsonAsync("/v1/admin/templates",
            new { slug = "c-" + Guid.NewGuid().ToString("N")[..12], name = "Draft", manifest = TestManifests.Minimal() })).AssertStatusAsync(201)).GetProperty("id").GetString()!;
        foreach (var (method, pattern) in routes)
        {
            var path = System.Text.RegularExpressions.Regex.Replace(pattern.Replace("{workspaceId}", team.Id, StringComparison.Ordinal)
                .Replace("{templateId:guid}", draft, StringComparison.Ordinal), @"\{[a-zA-Z]+(:guid)?\}", Guid.NewGuid().ToString());
            async Task<int> SendAsync(Actor actor)
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path);
                if (method is "POST" or "PUT" or "PATCH")
                {
                    // A body each platform route accepts, so only the caller's rights decide its answer.
                    request.Content = HttpAssertions.Json((method, pattern) switch
                    {
                        ("POST", "/v1/admin/templates") => new { slug = "c-" + Guid.NewGuid().ToString("N")[..12], name = "Probe", manifest = TestManifests.Minimal() },
                        ("PATCH", _) when pattern.StartsWith("/v1/admin/templates", StringComparison.Ordinal) => new { description = "probe" },
                        (_, var p) when p.EndsWith("/reject", StringComparison.Ordinal) => new { reason = "probe" },
                        (_, var p) when p.EndsWith("/feature", StringComparison.Ordinal) => new { featured = true },
                        ("PUT", "/v1/admin/users") => new { email = $"{Guid.NewGuid():N}@example.test", role = "admin" },
                        _ => (object)new { },
                    });
                }
                return (int)(await actor.Http.SendAsync(request)).StatusCode;
            }
            var platformOwners = await SendAsync(platformOwnersViewerKey);
            var viewers = await SendAsync(viewersViewerKey);
            if (platformOwners != viewers || (pattern.StartsWith("/v1/admin", StringComparison.Ordinal) && platformOwners is not (403 or 404)))
            {
                failures.Add($"{method} {pattern}: platform owner's confined key {platformOwners}, viewer's {viewers}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal("draft", await server.OwnerScalarAsync<string>("SELECT status FROM connector_templates WHERE id = @id::uuid", new { id = draft }));

        // /v1/me reports no platform role; lists show only the key's workspace, with the capped role.
        var me = await (await platformOwnersViewerKey.Http.GetAsync("/v1/me")).AssertStatusAsync(200);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, me.GetProperty("platform_role").ValueKind);
        var workspaces = (await (await platformOwnersViewerKey.Http.GetAsync("/v1/workspaces")).AssertStatusAsync(200)).GetProperty("items").EnumerateArray().ToList();
        var only = Assert.Single(workspaces);
        Assert.Equal(team.Id, only.GetProperty("id").GetString());
        Assert.Equal("viewer", only.GetProperty("role").GetString());
        Assert.Equal(2, (await (await team.Owner.Http.GetAsync("/v1/workspaces")).AssertStatusAsync(200)).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task A_confined_key_lists_and_revokes_only_its_workspaces_keys_and_mints_nothing_wider()
    {
        var team = await server.TeamAsync();
        var otherWorkspace = await server.CreateWorkspaceAsync(team.Owner, "Other");
        var expires = DateTimeOffset.UtcNow.AddHours(2);
        var confined = await ConfinedKeyAsync(team.Owner, team.Id, "admin", expires);
        var elsewhere = await ConfinedKeyAsync(team.Owner, otherWorkspace, "admin");
        var personalKeyId = (await (await team.Owner.Http.GetAsync("/v1/me")).AssertStatusAsync(200)).GetProperty("key_id").GetString()!;
        var confinedKeyId = (await (await confined.Http.GetAsync("/v1/me")).AssertStatusAsync(200)).GetProperty("key_id").GetString()!;

        var listed = (await (await confined.Http.GetAsync("/v1/me/api-keys")).AssertStatusAsync(200)).GetProperty("items").EnumerateArray().ToList();
        Assert.NotEmpty(listed);
        Assert.All(listed, k => Assert.Equal(team.Id, k.GetProperty("workspace_id").GetString()));
        Assert.True((await (await team.Owner.Http.GetAsync("/v1/me/api-keys")).AssertStatusAsync(200)).GetProperty("items").GetArrayLength() > listed.Count);
        // The personal key and the other workspace's key are out of reach; the personal key still works.
        await (await confined.Http.DeleteAsync($"/v1/me/api-keys/{personalKeyId}")).AssertProblemAsync(404, "not-found");
        await (await elsewhere.Http.DeleteAsync($"/v1/me/api-keys/{confinedKeyId}")).AssertProblemAsync(404, "not-found");
        await (await team.Owner.Http.GetAsync("/v1/me")).AssertStatusAsync(200);

        // Minting: never a higher role, never a longer life.
        await (await confined.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "wider", role = "owner" })).AssertProblemAsync(403, "forbidden");
        await (await confined.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "longer", expires_at = expires.AddDays(30) })).AssertProblemAsync(403, "forbidden");
        var child = await (await confined.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "child" })).AssertStatusAsync(201);
        Assert.Equal("admin", child.GetProperty("role").GetString());
        Assert.Equal(team.Id, child.GetProperty("workspace_id").GetString());
        Assert.True(child.GetProperty("expires_at").GetDateTimeOffset() <= expires.AddSeconds(1));

        // Revoking a confined key through /me is audited in its workspace's log.
        var childId = child.GetProperty("id").GetString()!;
        await (await confined.Http.DeleteAsync($"/v1/me/api-keys/{childId}")).AssertStatusAsync(204);
        Assert.Equal(team.Id, await server.OwnerScalarAsync<string>(
            "SELECT workspace_id FROM audit_log WHERE action = 'api_key.revoked' AND target_id = @childId", new { childId }));
        var log = await (await team.Owner.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?action=api_key.revoked")).AssertStatusAsync(200);
        Assert.Contains(log.GetProperty("items").EnumerateArray(), e => e.GetProperty("target_id").GetString() == childId);
        // A personal key's revocation is audited in the platform log.
        var spare = await Plugboard.Hosting.Bootstrap.CreateKeyAsync(server.Service<Plugboard.Data.Db>(), team.Owner.Email, "spare", null, null, CancellationToken.None);
        var spareId = (await (await server.Client(spare).GetAsync("/v1/me")).AssertStatusAsync(200)).GetProperty("key_id").GetString()!;
        await (await team.Owner.Http.DeleteAsync($"/v1/me/api-keys/{spareId}")).AssertStatusAsync(204);
        Assert.Equal(1, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM audit_log WHERE action = 'api_key.revoked' AND target_id = @spareId AND workspace_id IS NULL", new { spareId }));

        // A key capped to a role but not confined manages no keys at all.
        var capped = await Plugboard.Hosting.Bootstrap.CreateKeyAsync(server.Service<Plugboard.Data.Db>(), team.Owner.Email, "capped", null, "viewer", CancellationToken.None);
        using var cappedHttp = server.Client(capped);
        await (await cappedHttp.GetAsync("/v1/me/api-keys")).AssertProblemAsync(403, "forbidden");
        await (await cappedHttp.DeleteAsync($"/v1/me/api-keys/{personalKeyId}")).AssertProblemAsync(403, "forbidden");
    }
}
