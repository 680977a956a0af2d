using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Security;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Executions end to end: API → queue → worker → engine → a real stub API on 127.0.0.1 → results and logs.</summary>
[Collection(ServerCollection.Name)]
public sealed class ExecutionTests(PlugboardServer server)
{
    internal static async Task<JsonElement> WaitForEndAsync(Actor actor, string location, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var execution = await (await actor.Http.GetAsync(location)).AssertStatusAsync(200);
            if (execution.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled" or "timed_out")
            {
                return execution;
            }
            Assert.True(DateTime.UtcNow < deadline, $"execution still {execution.GetProperty("status").GetString()}: {execution}");
            await Task.Delay(50);
        }
    }

    private static async Task<string> StartAsync(Actor actor, string workspaceId, string connectorId, object? inputs = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/workspaces/{workspaceId}/connectors/{connectorId}/executions")
        {
            Content = HttpAssertions.Json(new { inputs = inputs ?? new { } }),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        var response = await actor.Http.SendAsync(request);
        var body = await response.AssertStatusAsync(202);
        Assert.Equal("queued", body.GetProperty("status").GetString());
        return response.Headers.Location!.ToString();
    }

    private static async Task<string> ConnectorAsync(TeamWorkspace team, object manifest, object? secret = null, int? maxConcurrency = null)
    {
        string? credentialId = null;
        if (secret is not null)
        {
            credentialId = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials",
                new { name = "cred-" + Guid.NewGuid().ToString("N")[..6], auth_type = "custom", secret })).AssertStatusAsync(201)).GetProperty("id").GetString();
        }
        var body = new Dictionary<string, object?> { ["name"] = "conn-" + Guid.NewGuid().ToString("N")[..8], ["manifest"] = manifest, ["credential_id"] = credentialId };
        if (maxConcurrency is not null)
        {
            body["max_concurrency"] = maxConcurrency;
        }
        return (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", body)).AssertStatusAsync(201)).GetProperty("id").GetString()!;
    }

    /// <summary>PostgreSQL's jsonb cannot hold a NUL character: an API that answers one (in a value the output keeps and
    /// in the logged body) still gives a stored result, with U+FFFD in its place, rather than an execution that never ends.</summary>
    [Fact]
    public async Task A_nul_character_in_a_response_is_stored_as_a_replacement_character()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/nul", () => Results.Text("{\"name\": \"a\\u0000b\"}", "application/json"));
            app.MapGet("/nul-error", () => Results.Text("broken\0here", "text/plain", statusCode: 500));
        });
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new[] { new { id = "get", request = new { method = "GET", path = "/nul" }, extract = new { name = "$.name" } } },
            output = new { name = "{{ steps.get.name }}" },
        });
        var execution = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, connectorId));
        Assert.Equal("succeeded", execution.GetProperty("status").GetString());
        Assert.Equal("a\uFFFDb", execution.GetProperty("output").GetProperty("name").GetString());
        Assert.DoesNotContain('\0', execution.GetProperty("steps")[0].GetProperty("response_body").GetString()!);

        var failing = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new[] { new { id = "get", request = new { method = "GET", path = "/nul-error" }, retry = new { max_attempts = 1 } } },
        });
        var failed = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, failing));
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Contains("broken\uFFFDhere", failed.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    /// <summary>A result the database refuses on every attempt (here: a trigger on this connector's rows) still ends the
    /// execution, as failed with a reason, instead of leaving it "running" behind a dead job.</summary>
    [Fact]
    public async Task An_execution_whose_result_cannot_be_stored_ends_as_failed_on_its_last_attempt()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/x", () => Results.Json(new { v = 1 })));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new[] { new { id = "get", request = new { method = "GET", path = "/x" }, extract = new { v = "$.v" } } },
            output = new { v = "{{ steps.get.v }}" },
        });
        var trigger = "refuse_" + connectorId.Replace("-", "", StringComparison.Ordinal);
        await server.OwnerExecuteAsync(
            $"""
            CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;
            CREATE TRIGGER {trigger} BEFORE UPDATE ON connector_executions FOR EACH ROW
              WHEN (NEW.connector_id = '{connectorId}' AND NEW.output IS NOT NULL) EXECUTE FUNCTION {trigger}();
            """);
        try
        {
            var execution = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, connectorId), TimeSpan.FromSeconds(90));
            Assert.Equal("failed", execution.GetProperty("status").GetString());
            Assert.Contains("could not be stored after 5 attempts", execution.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Equal(JsonValueKind.Null, execution.GetProperty("output").ValueKind);
            Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE payload->>'executionId' = @id",
                new { id = execution.GetProperty("id").GetString() }));
        }
        finally
        {
            await server.OwnerExecuteAsync($"DROP TRIGGER {trigger} ON connector_executions; DROP FUNCTION {trigger}();");
        }
    }

    [Fact]
    public async Task Official_rest_template_runs_with_offset_pagination_and_its_own_credential()
    {
        var seenKeys = new ConcurrentBag<string>();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/records", (HttpRequest r, int limit, int offset) =>
        {
            seenKeys.Add(r.Headers["X-API-Key"].ToString());
            var count = Math.Max(0, Math.Min(limit, 230 - offset));
            return Results.Json(new { data = Enumerable.Range(offset, count).Select(i => new { id = i }) });
        }));
        var team = await server.TeamAsync();
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install", new
        {
            workspace_id = team.Id,
            credentials = new { api_key = "rest-key-" + server.Canary },
            config = new { base_url = stub.Url },
        })).AssertStatusAsync(201);
        var location = await StartAsync(team.Member, team.Id, connector.GetProperty("id").GetString()!);
        var done = await WaitForEndAsync(team.Viewer, location);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        Assert.Equal(230, done.GetProperty("output").GetProperty("records").GetArrayLength());
        Assert.All(seenKeys, k => Assert.Equal("rest-key-" + server.Canary, k));
        var steps = done.GetProperty("steps");
        Assert.True(steps.GetArrayLength() >= 3);
        Assert.DoesNotContain(server.Canary, done.ToString(), StringComparison.Ordinal);
        Assert.All(steps.EnumerateArray(), s => Assert.Equal(200, s.GetProperty("status").GetInt32()));
    }

    [Fact]
    public async Task Oauth2_template_refreshes_and_persists_the_rotated_refresh_token()
    {
        var tokenCalls = 0;
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/token", async (HttpRequest r) =>
            {
                var form = await r.ReadFormAsync();
                Interlocked.Increment(ref tokenCalls);
                return form["grant_type"] == "refresh_token" && form["refresh_token"] == "refresh-1"
                    ? Results.Json(new { access_token = "access-1", token_type = "Bearer", expires_in = 3600, refresh_token = "refresh-2" })
                    : Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            });
            app.MapGet("/me", (HttpRequest r) => r.Headers.Authorization == "Bearer access-1"
                ? Results.Json(new { id = 42, name = "Ada" })
                : Results.Json(new { error = "unauthorized" }, statusCode: 401));
        });
        var team = await server.TeamAsync();
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'oauth2-api'");
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install", new
        {
            workspace_id = team.Id,
            credentials = new { client_id = "cid", client_secret = "csecret", refresh_token = "refresh-1" },
            config = new { base_url = stub.Url, token_url = stub.Url + "/token" },
        })).AssertStatusAsync(201);
        var connectorId = connector.GetProperty("id").GetString()!;
        var credentialBefore = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/{connector.GetProperty("credential_id").GetString()}")).AssertStatusAsync(200);
        var connectorBefore = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        var first = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, connector.GetProperty("id").GetString()!));
        Assert.True(first.GetProperty("status").GetString() == "succeeded", first.ToString());
        // The credential's metadata says what the refresh stored, and the connectors using it see the change.
        var credentialAfter = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/{connector.GetProperty("credential_id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal(["access_token", "access_token_expires_at", "client_id", "client_secret", "refresh_token"],
            credentialAfter.GetProperty("secret_fields").EnumerateArray().Select(f => f.GetString()));
        Assert.True(credentialAfter.GetProperty("credentials_updated_at").GetDateTime() > credentialBefore.GetProperty("credentials_updated_at").GetDateTime());
        var connectorAfter = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.True(connectorAfter.GetProperty("credentials_updated_at").GetDateTime() > connectorBefore.GetProperty("credentials_updated_at").GetDateTime());
        Assert.Equal("Ada", first.GetProperty("output").GetProperty("name").GetString());
        // The rotated refresh token and the access token were written back into the encrypted credential.
        var credentialId = Guid.Parse(connector.GetProperty("credential_id").GetString()!);
        var stored = await server.OwnerScalarAsync<string>("SELECT encrypted_payload FROM workspace_api_credentials WHERE id = @credentialId", new { credentialId });
        var fields = JsonSerializer.Deserialize<Dictionary<string, string>>(server.Keys.Decrypt(stored, KeyRing.Aad(team.Id, "workspace_api_credentials", credentialId, "encrypted_payload")))!;
        Assert.Equal("refresh-2", fields["refresh_token"]);
        Assert.Equal("access-1", fields["access_token"]);
        // A second run reuses the still-valid access token.
        var second = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, connectorId));
        Assert.Equal("succeeded", second.GetProperty("status").GetString());
        Assert.Equal(1, tokenCalls);
        Assert.DoesNotContain("access-1", second.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("refresh-2", first.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refresh_is_single_flight_across_runs_and_holds_no_lock_during_the_token_request()
    {
        var tokenCalls = 0;
        var inTokenRequest = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/token", async () =>
            {
                Interlocked.Increment(ref tokenCalls);
                inTokenRequest.TrySetResult();
                await release.Task.WaitAsync(TimeSpan.FromSeconds(60));
                return Results.Json(new { access_token = "access-x", expires_in = 3600, refresh_token = "refresh-x" });
            });
            app.MapGet("/me", (HttpRequest r) => r.Headers.Authorization == "Bearer access-x" ? Results.Json(new { id = 1, name = "Ada" }) : Results.StatusCode(401));
        });
        var team = await server.TeamAsync();
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'oauth2-api'");
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install", new
        {
            workspace_id = team.Id,
            credentials = new { client_id = "cid", client_secret = "csecret", refresh_token = "refresh-0" },
            config = new { base_url = stub.Url, token_url = stub.Url + "/token" },
        })).AssertStatusAsync(201);
        var connectorId = connector.GetProperty("id").GetString()!;
        var runs = new[] { await StartAsync(team.Member, team.Id, connectorId), await StartAsync(team.Member, team.Id, connectorId) };
        await inTokenRequest.Task.WaitAsync(TimeSpan.FromSeconds(30));
        // While the provider takes its time, an admin's edit of the credential does not wait for it.
        var rename = team.Admin.Http.PatchAsync($"/v1/workspaces/{team.Id}/credentials/{connector.GetProperty("credential_id").GetString()}",
            HttpAssertions.Json(new { name = "renamed during refresh" }));
        Assert.Same(rename, await Task.WhenAny(rename, Task.Delay(TimeSpan.FromSeconds(20))));
        await (await rename).AssertStatusAsync(200);
        release.SetResult();
        foreach (var run in runs)
        {
            Assert.Equal("succeeded", (await WaitForEndAsync(team.Member, run)).GetProperty("status").GetString());
        }
        Assert.Equal(1, tokenCalls); // the second run waited for the first's refresh and used its token
    }

    [Fact]
    public async Task Cancel_stops_a_running_execution_and_aborts_the_request_in_flight()
    {
        var started = new TaskCompletionSource();
        var aborted = new TaskCompletionSource();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/slow", async (HttpContext http) =>
        {
            started.TrySetResult();
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(60), http.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
            return Results.Ok();
        }));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new { version = 1, base_url = stub.Url, steps = new[] { new { id = "slow", request = new { method = "GET", path = "/slow" } } } });
        var location = await StartAsync(team.Member, team.Id, connectorId);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await (await team.Member.Http.PostAsync(location + "/cancel", null)).AssertStatusAsync(202);
        var done = await WaitForEndAsync(team.Member, location, TimeSpan.FromSeconds(15));
        Assert.Equal("cancelled", done.GetProperty("status").GetString());
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await (await team.Member.Http.PostAsync(location + "/cancel", null)).AssertProblemAsync(409, "execution-finished");
    }

    [Fact]
    public async Task Hostile_manifests_end_quickly_with_a_clear_error_while_other_executions_run()
    {
        var team = await server.TeamAsync();
        var huge = Enumerable.Range(0, 60_000).Select(i => new string('x', 80) + i).ToArray(); // ~5 MB of JSON
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/ok", () => Results.Json(new { id = 7 }));
            app.MapGet("/names", () => Results.Json(new { items = new[] { new { name = new string('a', 40) + "!" } } }));
            app.MapGet("/huge", () => Results.Json(new { items = huge }));
        }, record: false);
        object Manifest(string path, string extract, object? output = null) => new Dictionary<string, object?>
        {
            ["version"] = 1,
            ["base_url"] = stub.Url,
            ["steps"] = new[] { new { id = "s", request = new { method = "GET", path }, extract = new { value = extract } } },
            ["output"] = output ?? new { value = "{{ steps.s.value }}" },
        };
        var normal = await ConnectorAsync(team, Manifest("/ok", "$.id"));
        var regex = await ConnectorAsync(team, Manifest("/names", "$.items[?(@.name =~ /^(a+)+$/)].name"));
        var bigOutput = await ConnectorAsync(team, Manifest("/huge", "$.items"));
        // A doubling loop is refused when it is saved, with a pointer to the template ...
        const string doubling = "{% assign s = 'x' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}";
        var refused = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors",
            new { name = "doubling", manifest = Manifest("/ok", "$.id", new { value = doubling }) })).AssertProblemAsync(422, "manifest-invalid");
        Assert.Contains("/manifest/output/value", refused.GetProperty("errors").ToString(), StringComparison.Ordinal);
        var stale = await ConnectorAsync(team, Manifest("/ok", "$.id"));
        await server.OwnerExecuteAsync("UPDATE connectors SET manifest = jsonb_set(manifest, '{output,value}', to_jsonb(@doubling::text)) WHERE id = @id::uuid",
            new { doubling, id = stale });

        // ... and one stored before this rule (written past the API) is refused when it is run, before anything is queued.
        var notRunnable = await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{stale}/executions", new { }))
            .AssertProblemAsync(422, "connector-not-runnable");
        Assert.Contains("/output/value", notRunnable.GetProperty("detail").GetString(), StringComparison.Ordinal);
        // A connector saved without a manifest ({} or none) is refused when it is run, until it has one.
        foreach (var empty in new object?[] { new { }, null })
        {
            var bare = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = empty is null ? "bare-none" : "bare-empty", manifest = empty })).AssertStatusAsync(201))
                .GetProperty("id").GetString();
            var noSteps = await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{bare}/executions", new { }))
                .AssertProblemAsync(422, "connector-not-runnable");
            Assert.Contains("no steps", noSteps.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        var hostile = new[] { regex, bigOutput };
        var started = new List<(string Connector, string Location)>();
        foreach (var connector in hostile.Concat(Enumerable.Repeat(normal, 6)))
        {
            started.Add((connector, await StartAsync(team.Member, team.Id, connector)));
        }
        var ended = new Dictionary<string, JsonElement>();
        foreach (var (connector, location) in started)
        {
            ended[location] = await WaitForEndAsync(team.Member, location, TimeSpan.FromSeconds(60));
        }
        foreach (var (connector, location) in started.Where(s => s.Connector == normal))
        {
            Assert.Equal("succeeded", ended[location].GetProperty("status").GetString());
            Assert.Equal(7, ended[location].GetProperty("output").GetProperty("value").GetInt32());
        }
        JsonElement Ended(string connector) => ended[started.First(s => s.Connector == connector).Location];
        Assert.Equal("failed", Ended(regex).GetProperty("status").GetString());
        Assert.Contains("regular expression that took longer than", Ended(regex).GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("failed", Ended(bigOutput).GetProperty("status").GetString());
        Assert.True(Ended(bigOutput).GetProperty("output_truncated").GetBoolean());
        Assert.Equal(JsonValueKind.Null, Ended(bigOutput).GetProperty("output").ValueKind);
        Assert.Contains("more than the limit of", Ended(bigOutput).GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.False(Ended(normal).GetProperty("output_truncated").GetBoolean());
    }

    [Fact]
    public async Task Outbound_requests_to_private_and_metadata_addresses_are_blocked()
    {
        var team = await server.TeamAsync();
        foreach (var target in new[] { "http://169.254.169.254", "http://10.0.0.1", "http://[fd00:ec2::254]" })
        {
            var connectorId = await ConnectorAsync(team, new { version = 1, base_url = target, steps = new[] { new { id = "probe", request = new { method = "GET", path = "/latest/meta-data" } } } });
            var done = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, connectorId));
            Assert.Equal("failed", done.GetProperty("status").GetString());
            Assert.Contains("PLUGBOARD_OUTBOUND_ALLOW", done.GetProperty("error").GetString()!, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Secrets_never_reach_the_step_log_the_stream_or_errors_even_when_echoed()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/echo", (HttpRequest r) =>
            Results.Json(new { saw = r.Headers.Authorization.ToString(), query = r.QueryString.Value }, statusCode: 500)));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            auth = new { type = "bearer", token = "{{ credentials.token }}" },
            steps = new[] { new { id = "echo", request = new { method = "GET", path = "/echo", query = new { api_key = "{{ credentials.token }}" } }, retry = new { max_attempts = 2 } } },
        }, secret: new { token = server.Canary });
        var location = await StartAsync(team.Member, team.Id, connectorId);
        var done = await WaitForEndAsync(team.Member, location);
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.DoesNotContain(server.Canary, done.ToString(), StringComparison.Ordinal);
        Assert.Contains("***", done.ToString(), StringComparison.Ordinal);
        var stream = await team.Member.Http.GetStringAsync(location + "/stream");
        Assert.DoesNotContain(server.Canary, stream, StringComparison.Ordinal);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_executions WHERE steps_log::text LIKE '%' || @canary || '%' OR error LIKE '%' || @canary || '%'", new { canary = server.Canary }));
        // The connector records the failure.
        var connector = await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(1, connector.GetProperty("error_count").GetInt32());
        Assert.NotEqual(JsonValueKind.Null, connector.GetProperty("last_error").ValueKind);
    }

    [Fact]
    public async Task The_live_stream_sends_each_step_then_the_end()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/step/{n:int}", async (int n) =>
        {
            await Task.Delay(150);
            return Results.Json(new { next = n + 1 });
        }));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new object[]
            {
                new { id = "a", request = new { method = "GET", path = "/step/1" }, extract = new { next = "$.next" } },
                new { id = "b", request = new { method = "GET", path = "/step/{{ steps.a.next }}" }, extract = new { next = "$.next" } },
                new { id = "c", request = new { method = "GET", path = "/step/{{ steps.b.next }}" }, extract = new { next = "$.next" } },
            },
            output = new { last = "{{ steps.c.next }}" },
        });
        var location = await StartAsync(team.Member, team.Id, connectorId);
        using var response = await team.Viewer.Http.GetAsync(location + "/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(e => e.StartsWith("event:", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, events.Count(e => e.StartsWith("event: step", StringComparison.Ordinal)));
        var end = Assert.Single(events, e => e.StartsWith("event: end", StringComparison.Ordinal));
        Assert.Contains("\"status\":\"succeeded\"", end, StringComparison.Ordinal);
        var done = await WaitForEndAsync(team.Viewer, location);
        Assert.Equal(4, done.GetProperty("output").GetProperty("last").GetInt32());
    }

    [Fact]
    public async Task The_live_stream_delivers_a_step_before_the_run_ends_and_resumes_from_last_event_id()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/fast/{n:int}", (int n) => Results.Json(new { next = n + 1 }));
            app.MapGet("/held", async () =>
            {
                await release.Task.WaitAsync(TimeSpan.FromSeconds(60));
                return Results.Json(new { next = 99 });
            });
        });
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new object[]
            {
                new { id = "a", request = new { method = "GET", path = "/fast/1" }, extract = new { next = "$.next" } },
                new { id = "b", request = new { method = "GET", path = "/fast/{{ steps.a.next }}" }, extract = new { next = "$.next" } },
                new { id = "c", request = new { method = "GET", path = "/held" }, extract = new { next = "$.next" } },
            },
        });
        var location = await StartAsync(team.Member, team.Id, connectorId);
        // A plain client: the test server's clients buffer whole responses, which would hide whether the stream is live.
        using var streaming = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        streaming.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", team.Viewer.Key);
        using (var response = await streaming.GetAsync(location + "/stream", HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            // The third request is held until a step has arrived: a stream that wrote steps only at the end would wait forever.
            var lines = new List<string>();
            while (lines.Count(l => l == "event: step") < 2)
            {
                var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.NotNull(line);
                lines.Add(line);
            }
            Assert.Equal("running", (await (await team.Viewer.Http.GetAsync(location)).AssertStatusAsync(200)).GetProperty("status").GetString());
            release.SetResult();
            var rest = await reader.ReadToEndAsync();
            Assert.Contains("event: end", rest, StringComparison.Ordinal);
        }
        // A reconnecting client gets only what came after the last id it saw.
        using var resume = new HttpRequestMessage(HttpMethod.Get, location + "/stream");
        resume.Headers.Add("Last-Event-ID", "2");
        var resumed = await (await team.Viewer.Http.SendAsync(resume)).Content.ReadAsStringAsync();
        var events = resumed.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var step = Assert.Single(events, e => e.Contains("event: step", StringComparison.Ordinal));
        Assert.Contains("id: 3", step, StringComparison.Ordinal);
        Assert.Contains("/held", step, StringComparison.Ordinal);
        Assert.Single(events, e => e.Contains("event: end", StringComparison.Ordinal));
        using var bad = new HttpRequestMessage(HttpMethod.Get, location + "/stream");
        bad.Headers.Add("Last-Event-ID", "abc");
        await (await team.Viewer.Http.SendAsync(bad)).AssertProblemAsync(400);
    }

    [Fact]
    public async Task A_failing_live_step_log_write_does_not_fail_the_execution()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/s/{n:int}", async (int n) =>
        {
            await Task.Delay(250); // longer than a flush interval, so the live log is written (and fails) between steps
            return Results.Json(new { next = n + 1 });
        }));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new object[]
            {
                new { id = "a", request = new { method = "GET", path = "/s/1" }, extract = new { next = "$.next" } },
                new { id = "b", request = new { method = "GET", path = "/s/{{ steps.a.next }}" }, extract = new { next = "$.next" } },
            },
        });
        // A database blip for this connector's live log only: every write of steps_log before the execution finishes fails.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        await server.OwnerExecuteAsync($$"""
            CREATE FUNCTION blip_{{suffix}}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.connector_id = '{{connectorId}}' AND NEW.finished_at IS NULL AND NEW.steps_log IS DISTINCT FROM OLD.steps_log THEN
                    RAISE EXCEPTION 'simulated blip' USING ERRCODE = '08006';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER blip_{{suffix}} BEFORE UPDATE ON connector_executions FOR EACH ROW EXECUTE FUNCTION blip_{{suffix}}();
            """);
        try
        {
            var location = await StartAsync(team.Member, team.Id, connectorId);
            var done = await WaitForEndAsync(team.Member, location);
            Assert.Equal("succeeded", done.GetProperty("status").GetString());
            Assert.Equal(2, done.GetProperty("steps").GetArrayLength()); // the completion wrote the whole log
        }
        finally
        {
            await server.OwnerExecuteAsync($"DROP TRIGGER blip_{suffix} ON connector_executions; DROP FUNCTION blip_{suffix}();");
        }
    }

    [Fact]
    public async Task Cancelling_a_queued_execution_is_immediate()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/held", async () =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(60));
            return Results.Json(new { ok = true });
        }));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            steps = new[] { new { id = "held", request = new { method = "GET", path = "/held" } } },
        }, maxConcurrency: 1);
        var running = await StartAsync(team.Member, team.Id, connectorId);
        var queued = await StartAsync(team.Member, team.Id, connectorId); // waits behind the first: max_concurrency 1
        var cancelled = await (await team.Member.Http.PostAsync(queued + "/cancel", null)).AssertStatusAsync(202);
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal("cancelled", (await (await team.Member.Http.GetAsync(queued)).AssertStatusAsync(200)).GetProperty("status").GetString());
        release.SetResult();
        Assert.Equal("succeeded", (await WaitForEndAsync(team.Member, running)).GetProperty("status").GetString());
        Assert.Equal("cancelled", (await (await team.Member.Http.GetAsync(queued)).AssertStatusAsync(200)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Creation_is_idempotent_validated_and_role_checked()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/ok", () => Results.Json(new { ok = true })));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new
        {
            version = 1,
            base_url = stub.Url,
            inputs = new { region = new { type = "string", required = true } },
            steps = new[] { new { id = "ok", request = new { method = "GET", path = "/ok", query = new { region = "{{ inputs.region }}" } } } },
        });
        var key = Guid.NewGuid().ToString();
        var first = await StartAsync(team.Member, team.Id, connectorId, new { region = "eu" }, key);
        var again = await StartAsync(team.Member, team.Id, connectorId, new { region = "eu" }, key);
        Assert.Equal(first, again);
        var executions = $"/v1/workspaces/{team.Id}/connectors/{connectorId}/executions";
        await (await team.Member.Http.PostAsJsonAsync(executions, new { inputs = new { } })).AssertProblemAsync(422);
        await (await team.Member.Http.PostAsJsonAsync(executions, new { inputs = new { region = 5 } })).AssertProblemAsync(422);
        await (await team.Member.Http.PostAsJsonAsync(executions, new { inputs = new { region = "eu", other = 1 } })).AssertProblemAsync(422);
        await (await team.Viewer.Http.PostAsJsonAsync(executions, new { inputs = new { region = "eu" } })).AssertProblemAsync(403);
        await WaitForEndAsync(team.Member, first);
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_executions WHERE connector_id = @id", new { id = Guid.Parse(connectorId) }));
        var list = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/executions?connector_id={connectorId}&status=succeeded")).AssertStatusAsync(200);
        Assert.Single(list.GetProperty("items").EnumerateArray());
        var none = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/executions?status=failed&trigger=api")).AssertStatusAsync(200);
        Assert.Empty(none.GetProperty("items").EnumerateArray());
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/executions?status=exploded")).AssertProblemAsync(400);
        // Another workspace sees none of it.
        var other = await server.TeamAsync();
        await (await other.Owner.Http.GetAsync(first.Replace(team.Id, other.Id, StringComparison.Ordinal))).AssertProblemAsync(404);
        await (await other.Owner.Http.GetAsync(first)).AssertProblemAsync(404);
    }

    [Fact]
    public async Task The_per_connector_concurrency_limit_holds_and_success_resets_error_counters()
    {
        var current = 0;
        var peak = 0;
        await using var stub = await Stub.StartAsync(app => app.MapGet("/work", async () =>
        {
            var now = Interlocked.Increment(ref current);
            InterlockedMax(ref peak, now);
            await Task.Delay(200);
            Interlocked.Decrement(ref current);
            return Results.Json(new { ok = true });
        }));
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, new { version = 1, base_url = stub.Url, steps = new[] { new { id = "work", request = new { method = "GET", path = "/work" } } } }, maxConcurrency: 1);
        await server.OwnerExecuteAsync("UPDATE connectors SET error_count = 3, last_error = 'old', last_error_at = now() WHERE id = @id", new { id = Guid.Parse(connectorId) });
        var locations = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            locations.Add(await StartAsync(team.Member, team.Id, connectorId));
        }
        foreach (var location in locations)
        {
            Assert.Equal("succeeded", (await WaitForEndAsync(team.Member, location)).GetProperty("status").GetString());
        }
        Assert.Equal(1, peak);
        var connector = await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(0, connector.GetProperty("error_count").GetInt32());
        Assert.Equal(JsonValueKind.Null, connector.GetProperty("last_error").ValueKind);
        Assert.Equal(5, connector.GetProperty("stats").GetProperty("succeeded").GetInt64());
    }

    [Fact]
    public async Task A_credential_the_key_ring_cannot_read_fails_the_execution_with_what_to_do()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/ok", () => Results.Json(new { ok = true })));
        var team = await server.TeamAsync();
        var manifest = new
        {
            version = 1,
            base_url = stub.Url,
            auth = new { type = "bearer", token = "{{ credentials.token }}" },
            steps = new[] { new { id = "ok", request = new { method = "GET", path = "/ok" } } },
        };
        var good = await ConnectorAsync(team, manifest, secret: new { token = "first-token-value" });
        var moved = await ConnectorAsync(team, manifest, secret: new { token = "second-token-value" });
        // A ciphertext copied from another row fails authentication (its AAD names the other row).
        await server.OwnerExecuteAsync(
            """
            UPDATE workspace_api_credentials t SET encrypted_payload = s.encrypted_payload
              FROM connectors cs JOIN workspace_api_credentials s ON s.workspace_id = cs.workspace_id AND s.id = cs.credential_id,
                   connectors ct
             WHERE cs.id = @good AND ct.id = @moved AND t.workspace_id = ct.workspace_id AND t.id = ct.credential_id
            """, new { good = Guid.Parse(good), moved = Guid.Parse(moved) });
        var done = await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, moved));
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.Contains("key ring", done.GetProperty("error").GetString()!, StringComparison.Ordinal);
        Assert.DoesNotContain("token-value", done.ToString(), StringComparison.Ordinal);
        Assert.Equal("succeeded", (await WaitForEndAsync(team.Member, await StartAsync(team.Member, team.Id, good))).GetProperty("status").GetString());
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
