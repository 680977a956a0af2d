using System.Net.Http.Json;
using System.Text.Json;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>The contract every resource shares: idempotent creates, ETags, cursor pages, audit rows, /me.</summary>
[Collection(ServerCollection.Name)]
public sealed class ApiFlowTests(PlugboardServer server)
{
    [Fact]
    public async Task An_expired_key_is_refused_and_a_removed_members_key_no_longer_reaches_the_workspace()
    {
        var team = await server.TeamAsync();
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}")).AssertStatusAsync(200);
        Assert.Equal(1, await server.OwnerScalarAsync<long>(
            "WITH expired AS (UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_hash = @hash RETURNING 1) SELECT count(*) FROM expired",
            new { hash = Plugboard.Security.ApiKeys.Hash(team.Viewer.Key) }));
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}")).AssertProblemAsync(401);

        await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}")).AssertStatusAsync(200);
        Assert.Equal(204, (int)(await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/members/{team.Member.UserId}")).StatusCode);
        await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}")).AssertProblemAsync(404);
        await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}/documents")).AssertProblemAsync(404);
    }

    [Fact]
    public async Task Idempotency_key_replays_the_first_answer_and_refuses_a_different_body()
    {
        var team = await server.TeamAsync();
        var path = $"/v1/workspaces/{team.Id}/connectors";
        async Task<HttpResponseMessage> PostAsync(string key, object body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = HttpAssertions.Json(body) };
            request.Headers.Add("Idempotency-Key", key);
            return await team.Admin.Http.SendAsync(request);
        }
        var key = Guid.NewGuid().ToString();
        var first = await PostAsync(key, new { name = "once" });
        var firstBody = await first.AssertStatusAsync(201);
        var again = await PostAsync(key, new { name = "once" });
        var againBody = await again.AssertStatusAsync(201);
        Assert.Equal(firstBody.GetProperty("id").GetString(), againBody.GetProperty("id").GetString());
        Assert.Equal(first.Headers.Location, again.Headers.Location);
        Assert.True(again.Headers.Contains("Idempotent-Replayed"));
        await (await PostAsync(key, new { name = "different" })).AssertProblemAsync(422, "idempotency-key-reused");
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id AND name = 'once'", new { id = team.Id }));
        // Concurrent retries with one key still create one row.
        var concurrentKey = Guid.NewGuid().ToString();
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => PostAsync(concurrentKey, new { name = "raced" })));
        Assert.All(answers, a => Assert.True((int)a.StatusCode is 201 or 409, a.StatusCode.ToString()));
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id AND name = 'raced'", new { id = team.Id }));
    }

    [Fact]
    public async Task Reusing_an_idempotency_key_for_a_different_request_answers_422_on_every_create_endpoint()
    {
        var team = await server.TeamAsync();
        var connector = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors",
            new { name = "runs", manifest = TestManifests.Minimal("http://127.0.0.1:9"), is_active = true })).AssertStatusAsync(201)).GetProperty("id").GetString();
        var official = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        string Unique(string prefix) => prefix + Guid.NewGuid().ToString("N")[..12];
        var email = $"{Unique("m")}@example.test";
        var slug = Unique("t-");
        var adminSlug = Unique("a-");
        var creates = new (Actor Actor, string Path, object First, object Second)[]
        {
            (team.Owner, "/v1/workspaces", new { name = "one" }, new { name = "two" }),
            (team.Owner, $"/v1/workspaces/{team.Id}/members", new { email, role = "viewer" }, new { email, role = "admin" }),
            (team.Admin, $"/v1/workspaces/{team.Id}/api-keys", new { name = "one" }, new { name = "two" }),
            (team.Admin, $"/v1/workspaces/{team.Id}/credentials", new { name = "cred", auth_type = "bearer", secret = new { token = "first-secret-5521" } },
                new { name = "cred", auth_type = "bearer", secret = new { token = "second-secret-7734" } }),
            (team.Admin, $"/v1/workspaces/{team.Id}/connectors", new { name = "one" }, new { name = "two" }),
            (team.Admin, $"/v1/workspaces/{team.Id}/templates", new { slug, name = "One", manifest = TestManifests.Minimal() }, new { slug, name = "Two", manifest = TestManifests.Minimal() }),
            (team.Admin, $"/v1/templates/{official}/install", new { workspace_id = team.Id, name = "inst", credentials = new { api_key = "first-install-key" }, config = new { base_url = "https://api.example.test" } },
                new { workspace_id = team.Id, name = "inst", credentials = new { api_key = "second-install-key" }, config = new { base_url = "https://api.example.test" } }),
            (team.Member, $"/v1/workspaces/{team.Id}/connectors/{connector}/executions", new { inputs = new { } }, new { }),
            (team.Member, $"/v1/workspaces/{team.Id}/uploads/batches", new { expected_files = 2 }, new { expected_files = 3 }),
            (server.PlatformOwner, "/v1/admin/templates", new { slug = adminSlug, name = "One", manifest = TestManifests.Minimal() },
                new { slug = adminSlug, name = "Two", manifest = TestManifests.Minimal() }),
        };
        foreach (var (actor, path, first, second) in creates)
        {
            var key = Guid.NewGuid().ToString();
            async Task<HttpResponseMessage> PostAsync(object body)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = HttpAssertions.Json(body) };
                request.Headers.Add("Idempotency-Key", key);
                return await actor.Http.SendAsync(request);
            }
            var answer = await PostAsync(first);
            Assert.True((int)answer.StatusCode is 201 or 202, $"{path}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}");
            var reused = await PostAsync(second);
            Assert.True(reused.StatusCode == System.Net.HttpStatusCode.UnprocessableEntity, $"{path}: {await reused.Content.ReadAsStringAsync()}");
            var problem = await reused.AssertProblemAsync(422, "idempotency-key-reused");
            Assert.Contains("different request", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            var replay = await PostAsync(first);
            Assert.Equal(answer.StatusCode, replay.StatusCode);
            Assert.True(replay.Headers.Contains("Idempotent-Replayed"), path);
        }
        // The first secret is the one stored, and neither secret is kept in clear for the comparison.
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @id AND name = 'cred'", new { id = team.Id }));
        var stored = await server.OwnerScalarAsync<string>("SELECT string_agg(request_hash::text || coalesce(response::text, ''), ' ') FROM idempotency_keys WHERE workspace_id = @id", new { id = team.Id });
        foreach (var secret in new[] { "first-secret-5521", "second-secret-7734", "first-install-key", "second-install-key" })
        {
            Assert.DoesNotContain(secret, stored, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Config_is_checked_against_the_manifest_when_a_connector_is_saved_or_installed()
    {
        var team = await server.TeamAsync();
        var manifest = new
        {
            version = 1,
            base_url = "{{ config.base_url }}",
            config = new { base_url = new { type = "string", required = true }, page_size = new { type = "integer", @default = 50 } },
            steps = new[] { new { id = "get", request = new { method = "GET", path = "/" } } },
        };
        var path = $"/v1/workspaces/{team.Id}/connectors";
        var before = await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id", new { id = team.Id });
        foreach (var (config, pointer) in new (object Config, string Pointer)[]
        {
            (new { }, "/config/base_url"),
            (new { base_url = 7 }, "/config/base_url"),
            (new { base_url = "https://api.example.test", page_size = 2.5 }, "/config/page_size"),
            (new { base_url = "https://api.example.test", typo = true }, "/config/typo"),
        })
        {
            var problem = await (await team.Admin.Http.PostAsJsonAsync(path, new { name = "cfg-" + Guid.NewGuid().ToString("N")[..6], manifest, config })).AssertProblemAsync(422, "config-invalid");
            Assert.Contains(problem.GetProperty("errors").EnumerateArray(), e => e.GetProperty("pointer").GetString() == pointer);
        }
        Assert.Equal(before, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id", new { id = team.Id }));
        var created = await (await team.Admin.Http.PostAsJsonAsync(path, new { name = "cfg-ok", manifest, config = new { base_url = "https://api.example.test" } })).AssertStatusAsync(201);
        var connector = $"{path}/{created.GetProperty("id").GetString()}";
        // An update that would leave the config invalid is refused too, whichever of the two it changes.
        await (await team.Admin.Http.PatchAsync(connector, HttpAssertions.Json(new { config = new { page_size = 10 } }))).AssertProblemAsync(422, "config-invalid");
        var stricter = new
        {
            version = 1,
            base_url = "{{ config.base_url }}",
            config = new { base_url = new { type = "string", required = true }, region = new { type = "string", required = true } },
            steps = new[] { new { id = "get", request = new { method = "GET", path = "/" } } },
        };
        await (await team.Admin.Http.PatchAsync(connector, HttpAssertions.Json(new { manifest = stricter }))).AssertProblemAsync(422, "config-invalid");
        await (await team.Admin.Http.PatchAsync(connector, HttpAssertions.Json(new { manifest = stricter, config = new { base_url = "https://x.test", region = "eu" } }))).AssertStatusAsync(200);

        // Installing a template checks the config the same way, and creates nothing when it fails.
        var official = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        var credentials = await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @id", new { id = team.Id });
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{official}/install", new { workspace_id = team.Id, credentials = new { api_key = "k-1234" } }))
            .AssertProblemAsync(422, "config-invalid");
        Assert.Equal(credentials, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @id", new { id = team.Id }));
    }

    [Fact]
    public async Task Stale_if_match_answers_412_and_changes_nothing()
    {
        var team = await server.TeamAsync();
        var created = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "etag" })).AssertStatusAsync(201);
        var path = $"/v1/workspaces/{team.Id}/connectors/{created.GetProperty("id").GetString()}";
        var get = await team.Admin.Http.GetAsync(path);
        var etag = get.Headers.ETag!.Tag;
        async Task<HttpResponseMessage> PatchAsync(string? ifMatch, object body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Patch, path) { Content = HttpAssertions.Json(body) };
            if (ifMatch is not null)
            {
                request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
            }
            return await team.Admin.Http.SendAsync(request);
        }
        var first = await PatchAsync(etag, new { description = "first" });
        await first.AssertStatusAsync(200);
        Assert.NotEqual(etag, first.Headers.ETag!.Tag);
        await (await PatchAsync(etag, new { description = "stale" })).AssertProblemAsync(412, "precondition-failed");
        await (await PatchAsync("\"garbage\"", new { description = "bad" })).AssertProblemAsync(412, "precondition-failed");
        await (await PatchAsync(first.Headers.ETag!.Tag, new { description = "second" })).AssertStatusAsync(200);
        await (await PatchAsync(null, new { description = "unconditional" })).AssertStatusAsync(200);
        // RFC 9110: If-Match may list several tags (any one matching will do), weak or strong.
        var current = (await team.Admin.Http.GetAsync(path)).Headers.ETag!.Tag;
        var listed = await PatchAsync($"\"1\", {current}", new { description = "listed" });
        await listed.AssertStatusAsync(200);
        await (await PatchAsync($"W/{listed.Headers.ETag!.Tag}", new { description = "weak" })).AssertStatusAsync(200);
        await (await PatchAsync($"\"1\", {current}", new { description = "stale list" })).AssertProblemAsync(412, "precondition-failed");
        var final = await (await team.Admin.Http.GetAsync(path)).AssertStatusAsync(200);
        Assert.Equal("weak", final.GetProperty("description").GetString());
    }

    [Fact]
    public async Task Cursor_pages_walk_every_row_once()
    {
        var team = await server.TeamAsync();
        var names = new HashSet<string>();
        for (var i = 0; i < 7; i++)
        {
            await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = $"page-{i}" })).AssertStatusAsync(201);
            names.Add($"page-{i}");
        }
        var seen = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?limit=3{(cursor is null ? "" : "&cursor=" + cursor)}")).AssertStatusAsync(200);
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));
            cursor = page.GetProperty("next_cursor").GetString();
            pages++;
        }
        while (cursor is not null && pages < 10);
        Assert.Equal(3, pages);
        Assert.Equal(names.Order(), seen.Order());
        Assert.Equal(seen.Distinct().Count(), seen.Count);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"page-{6 - i}"), seen); // newest first
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?limit=0")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?limit=1000")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?cursor=!!!")).AssertProblemAsync(400);
        // A cursor belongs to its list: another list, or the same list of another workspace, refuses it.
        var first = (await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?limit=3")).AssertStatusAsync(200)).GetProperty("next_cursor").GetString();
        var foreign = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials?cursor={first}")).AssertProblemAsync(400, "bad-request");
        Assert.Contains("another list", foreign.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var other = await server.TeamAsync();
        await (await other.Viewer.Http.GetAsync($"/v1/workspaces/{other.Id}/connectors?cursor={first}")).AssertProblemAsync(400, "bad-request");
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?limit=3&cursor={first}")).AssertStatusAsync(200);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?is_active=maybe")).AssertProblemAsync(400);
        var inactive = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors?is_active=false")).AssertStatusAsync(200);
        Assert.Equal(0, inactive.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Rotating_a_credential_stamps_it_and_the_connectors_that_use_it_and_audits_without_secrets()
    {
        var team = await server.TeamAsync();
        var credential = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials",
            new { name = "api", auth_type = "api_key", secret = new { api_key = "first-secret-value-1234" } })).AssertStatusAsync(201);
        var credentialId = credential.GetProperty("id").GetString();
        Assert.Equal("••••1234", credential.GetProperty("masked_hint").GetString());
        Assert.False(credential.TryGetProperty("secret", out _));
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "uses-it", credential_id = credentialId })).AssertStatusAsync(201);
        var before = connector.GetProperty("credentials_updated_at").GetDateTime();
        await Task.Delay(20);
        var rotated = await (await team.Admin.Http.PatchAsync($"/v1/workspaces/{team.Id}/credentials/{credentialId}",
            HttpAssertions.Json(new { secret = new { api_key = "second-secret-value-9876" } }))).AssertStatusAsync(200);
        Assert.Equal("••••9876", rotated.GetProperty("masked_hint").GetString());
        Assert.True(rotated.GetProperty("credentials_updated_at").GetDateTime() > before);
        var after = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.True(after.GetProperty("credentials_updated_at").GetDateTime() > before);
        var audit = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?action=credential.updated")).AssertStatusAsync(200);
        var entry = Assert.Single(audit.GetProperty("items").EnumerateArray());
        Assert.Equal(team.Admin.UserId.ToString(), entry.GetProperty("actor_user_id").GetString());
        Assert.DoesNotContain("second-secret", entry.ToString(), StringComparison.Ordinal);
        // Deleting the credential detaches it from the connector rather than deleting the connector.
        await (await team.Admin.Http.DeleteAsync($"/v1/workspaces/{team.Id}/credentials/{credentialId}")).AssertStatusAsync(204);
        var detached = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, detached.GetProperty("credential_id").ValueKind);
    }

    [Fact]
    public async Task Every_change_writes_an_audit_row()
    {
        var team = await server.TeamAsync();
        var key = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "k" })).AssertStatusAsync(201);
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/api-keys/{key.GetProperty("id").GetString()}")).AssertStatusAsync(204);
        await (await team.Owner.Http.PatchAsync($"/v1/workspaces/{team.Id}/members/{team.Viewer.UserId}", HttpAssertions.Json(new { role = "member" }))).AssertStatusAsync(200);
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/members/{team.Viewer.UserId}")).AssertStatusAsync(204);
        var connector = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "audited" })).AssertStatusAsync(201);
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}")).AssertStatusAsync(204);
        var log = await (await team.Owner.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?limit=200")).AssertStatusAsync(200);
        var actions = log.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("action").GetString()).ToHashSet();
        foreach (var expected in new[] { "workspace.created", "member.added", "api_key.created", "api_key.revoked", "member.role_changed", "member.removed", "connector.created", "connector.deleted" })
        {
            Assert.Contains(expected, actions);
        }
        // The last owner cannot leave or be demoted.
        await (await team.Owner.Http.PatchAsync($"/v1/workspaces/{team.Id}/members/{team.Owner.UserId}", HttpAssertions.Json(new { role = "admin" }))).AssertProblemAsync(409);
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/members/{team.Owner.UserId}")).AssertProblemAsync(409);
        // The audit log of a deleted workspace survives it.
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}")).AssertStatusAsync(204);
        Assert.True(await server.OwnerScalarAsync<long>("SELECT count(*) FROM audit_log WHERE workspace_id = @id AND action = 'workspace.deleted'", new { id = team.Id }) == 1);
    }

    [Fact]
    public async Task Connector_and_workspace_stats_count_executions()
    {
        var team = await server.TeamAsync();
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "stats" })).AssertStatusAsync(201);
        var id = Guid.Parse(connector.GetProperty("id").GetString()!);
        await server.OwnerExecuteAsync(
            """
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, duration_ms, started_at)
            SELECT @ws, gen_random_uuid(), @id, s, d, now() FROM (VALUES ('succeeded', 100), ('succeeded', 200), ('failed', 300), ('queued', NULL)) v(s, d)
            """, new { ws = team.Id, id });
        var stats = (await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{id}")).AssertStatusAsync(200)).GetProperty("stats");
        Assert.Equal(4, stats.GetProperty("executions").GetInt64());
        Assert.Equal(2, stats.GetProperty("succeeded").GetInt64());
        Assert.Equal(1, stats.GetProperty("failed").GetInt64());
        Assert.Equal(0.6667m, stats.GetProperty("success_rate").GetDecimal());
        Assert.Equal(200m, stats.GetProperty("avg_duration_ms").GetDecimal());
        var workspace = (await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}")).AssertStatusAsync(200)).GetProperty("stats");
        Assert.Equal(1, workspace.GetProperty("connectors").GetInt64());
        Assert.Equal(4, workspace.GetProperty("executions").GetInt64());
    }

    [Fact]
    public async Task Me_shows_the_caller_and_manages_personal_keys()
    {
        var user = await server.NewUserAsync();
        var me = await (await user.Http.GetAsync("/v1/me")).AssertStatusAsync(200);
        Assert.Equal(user.Email, me.GetProperty("email").GetString());
        var keys = await (await user.Http.GetAsync("/v1/me/api-keys")).AssertStatusAsync(200);
        var key = Assert.Single(keys.GetProperty("items").EnumerateArray());
        Assert.False(key.TryGetProperty("key", out _));
        Assert.False(key.TryGetProperty("key_hash", out _));
        Assert.StartsWith(key.GetProperty("prefix").GetString()!, user.Key, StringComparison.Ordinal);
        Assert.NotEqual(JsonValueKind.Null, key.GetProperty("last_used_at").ValueKind);
        var other = await server.NewUserAsync();
        await (await other.Http.DeleteAsync($"/v1/me/api-keys/{key.GetProperty("id").GetString()}")).AssertProblemAsync(404);
        await (await user.Http.DeleteAsync($"/v1/me/api-keys/{key.GetProperty("id").GetString()}")).AssertStatusAsync(204);
        await (await user.Http.GetAsync("/v1/me")).AssertProblemAsync(401, "unauthorized");
    }

    [Fact]
    public async Task Health_readiness_openapi_and_reference_page_are_served()
    {
        using var anonymous = server.Client(null);
        await (await anonymous.GetAsync("/healthz")).AssertStatusAsync(200);
        var ready = await (await anonymous.GetAsync("/readyz")).AssertStatusAsync(200);
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        var openapi = await (await anonymous.GetAsync("/openapi/v1.json")).AssertStatusAsync(200);
        Assert.StartsWith("3.1", openapi.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var paths = openapi.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/v1/workspaces/{workspaceId}/connectors", out _));
        Assert.True(paths.TryGetProperty("/v1/templates/{templateId}/install", out _));
        var docs = await anonymous.GetAsync("/docs");
        Assert.Equal(200, (int)docs.StatusCode);
        Assert.Contains("text/html", docs.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
        await (await anonymous.GetAsync("/no/such/route")).AssertProblemAsync(404, "not-found");
    }

    [Fact]
    public async Task The_openapi_document_is_valid_and_declares_auth_parameters_ids_and_problems()
    {
        using var anonymous = server.Client(null);
        var text = await anonymous.GetStringAsync("/openapi/v1.json");
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
        var read = await Microsoft.OpenApi.OpenApiDocument.LoadAsync(stream, "json");
        Assert.True(read.Diagnostic is null || read.Diagnostic.Errors.Count == 0, string.Join("\n", read.Diagnostic?.Errors.Select(e => $"{e.Pointer}: {e.Message}") ?? []));
        var document = read.Document!;
        var validator = new Microsoft.OpenApi.OpenApiValidator(Microsoft.OpenApi.ValidationRuleSet.GetDefaultRuleSet());
        new Microsoft.OpenApi.OpenApiWalker(validator).Walk(document);
        var errors = validator.Errors.ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => $"{e.Pointer}: {e.Message}")));

        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal("bearer", json.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer").GetProperty("scheme").GetString());
        Assert.All(json.GetProperty("servers").EnumerateArray(), s => Assert.False(s.GetProperty("url").GetString()!.EndsWith('/')));
        var operationIds = new HashSet<string>();
        var operations = 0;
        foreach (var path in json.GetProperty("paths").EnumerateObject())
        {
            var declared = System.Text.RegularExpressions.Regex.Matches(path.Name, @"\{([^}:]+)").Select(m => m.Groups[1].Value).ToList();
            foreach (var operation in path.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "put" or "patch" or "delete"))
            {
                operations++;
                var op = operation.Value;
                var pathParameters = op.TryGetProperty("parameters", out var parameters)
                    ? parameters.EnumerateArray().Where(p => p.GetProperty("in").GetString() == "path").Select(p => p.GetProperty("name").GetString()).ToList()
                    : [];
                Assert.True(declared.All(pathParameters.Contains), $"{operation.Name} {path.Name} declares {string.Join(",", pathParameters)}");
                Assert.True(operationIds.Add(op.GetProperty("operationId").GetString()!), $"duplicate operationId at {operation.Name} {path.Name}");
                Assert.False(string.IsNullOrWhiteSpace(op.GetProperty("summary").GetString()));
                Assert.True(op.GetProperty("responses").TryGetProperty("default", out var problem), $"{operation.Name} {path.Name} has no problem response");
                Assert.True(problem.GetProperty("content").TryGetProperty("application/problem+json", out _));
            }
        }
        Assert.True(operations >= 35, $"only {operations} operations");
        // Anonymous operations say so; the rest inherit the bearer requirement.
        Assert.Equal(0, json.GetProperty("paths").GetProperty("/readyz").GetProperty("get").GetProperty("security").GetArrayLength());
        Assert.Equal(1, json.GetProperty("security").GetArrayLength());
    }

    [Fact]
    public async Task A_client_generated_from_the_openapi_document_compiles_and_calls_the_api()
    {
        using var anonymous = server.Client(null);
        var document = await NSwag.OpenApiDocument.FromJsonAsync(await anonymous.GetStringAsync("/openapi/v1.json"));
        var code = new NSwag.CodeGeneration.CSharp.CSharpClientGenerator(document, new NSwag.CodeGeneration.CSharp.CSharpClientGeneratorSettings
        {
            ClassName = "PlugboardClient",
            CSharpGeneratorSettings = { Namespace = "Generated", JsonLibrary = NJsonSchema.CodeGeneration.CSharp.CSharpJsonLibrary.SystemTextJson },
        }).GenerateFile();
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(p => Microsoft.CodeAnalysis.MetadataReference.CreateFromFile(p));
        var compilation = Microsoft.CodeAnalysis.CSharp.CSharpCompilation.Create("GeneratedPlugboardClient", [Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(code)],
            references, new Microsoft.CodeAnalysis.CSharp.CSharpCompilationOptions(Microsoft.CodeAnalysis.OutputKind.DynamicallyLinkedLibrary));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error).Take(10)));

        var context = new System.Runtime.Loader.AssemblyLoadContext("generated-client", isCollectible: true);
        try
        {
            image.Position = 0;
            var assembly = context.LoadFromStream(image);
            var user = await server.NewUserAsync();
            using var http = new HttpClient { BaseAddress = server.BaseAddress };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", user.Key);
            var client = Activator.CreateInstance(assembly.GetType("Generated.PlugboardClient")!, http)!;
            client.GetType().GetProperty("BaseUrl")!.SetValue(client, server.BaseAddress.ToString().TrimEnd('/'));
            var me = await (dynamic)client.GetType().GetMethod("GetMeAsync", Type.EmptyTypes)!.Invoke(client, null)!;
            Assert.Equal(user.Email, (string)me.GetType().GetProperty("Email")!.GetValue(me)!);
            // A problem answer surfaces as the client's exception, with its status.
            var missing = client.GetType().GetMethod("GetWorkspacesByWorkspaceIdAsync", [typeof(string)])!;
            var failure = await Assert.ThrowsAnyAsync<Exception>(async () => await (Task)missing.Invoke(client, ["ws_doesnotexist0000"])!);
            Assert.Equal(404, (int)failure.GetType().GetProperty("StatusCode")!.GetValue(failure)!);
        }
        finally
        {
            context.Unload();
        }
    }
}
