using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Plugboard.Testing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Connecting an account end to end: start → the provider's consent page (a stub authorization server on 127.0.0.1 that
/// checks PKCE, the client and the redirect URI as a real one does) → the anonymous callback → a stored credential that
/// runs use and refresh.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class OAuthConnectTests(PlugboardServer server)
{
    /// <summary>An OAuth2 provider: /authorize redirects back with a code (the user consented), /token exchanges it once.</summary>
    private sealed class Provider : IAsyncDisposable
    {
        public const string ClientId = "plugboard-app";
        public const string ClientSecret = "provider-client-secret-7f3a";
        private readonly ConcurrentDictionary<string, (string Challenge, string RedirectUri)> _codes = new();
        public Stub Stub { get; private set; } = null!;
        public volatile bool Lasting; // tokens without expiry or refresh token (Notion, Slack)
        public volatile bool RefuseExchange;
        public volatile string AccessToken = "access-" + Guid.NewGuid().ToString("N");
        public volatile string? RefusedToken;
        public int Refreshes;

        public static async Task<Provider> StartAsync()
        {
            var provider = new Provider();
            provider.Stub = await Stub.StartAsync(app =>
            {
                app.MapGet("/authorize", (HttpRequest request) =>
                {
                    var q = request.Query;
                    if (q["response_type"] != "code" || q["client_id"] != ClientId || q["code_challenge_method"] != "S256" || q["code_challenge"].ToString().Length != 43)
                    {
                        return Results.BadRequest(new { error = "invalid_request" });
                    }
                    var code = "code-" + Guid.NewGuid().ToString("N");
                    provider._codes[code] = (q["code_challenge"].ToString(), q["redirect_uri"].ToString());
                    return Results.Redirect(QueryHelpers.AddQueryString(q["redirect_uri"].ToString(), new Dictionary<string, string?> { ["code"] = code, ["state"] = q["state"] }));
                });
                app.MapPost("/token", async (HttpRequest request) =>
                {
                    var form = await request.ReadFormAsync();
                    if (form["client_id"] != ClientId || form["client_secret"] != ClientSecret)
                    {
                        return Results.Json(new { error = "invalid_client" }, statusCode: 401);
                    }
                    if (form["grant_type"] == "refresh_token")
                    {
                        Interlocked.Increment(ref provider.Refreshes);
                        provider.AccessToken = "access-" + Guid.NewGuid().ToString("N");
                        return Results.Json(new { access_token = provider.AccessToken, token_type = "bearer", expires_in = 3600 });
                    }
                    var code = form["code"].ToString();
                    if (provider.RefuseExchange || form["grant_type"] != "authorization_code" || !provider._codes.TryRemove(code, out var issued)
                        || issued.RedirectUri != form["redirect_uri"]
                        || issued.Challenge != Convert.ToBase64String(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString()))).TrimEnd('=').Replace('+', '-').Replace('/', '_'))
                    {
                        return Results.Json(new { error = "invalid_grant", error_description = "bad code " + code }, statusCode: 400);
                    }
                    return provider.Lasting
                        ? Results.Json(new { access_token = provider.AccessToken, token_type = "bearer" })
                        : Results.Json(new { access_token = provider.AccessToken, token_type = "bearer", expires_in = 3600, refresh_token = "refresh-" + Guid.NewGuid().ToString("N") });
                });
                app.MapGet("/me", (HttpRequest request) =>
                    request.Headers.Authorization.ToString() is var header && header == "Bearer " + provider.AccessToken && provider.AccessToken != provider.RefusedToken
                        ? Results.Json(new { id = "u-1", name = "Ada" })
                        : Results.Json(new { error = "invalid_token" }, statusCode: 401));
            });
            return provider;
        }

        public ValueTask DisposeAsync() => Stub.DisposeAsync();
    }

    private static object Manifest() => new Dictionary<string, object?>
    {
        ["version"] = 1,
        ["base_url"] = "{{ config.base_url }}",
        ["config"] = new { base_url = new { type = "string", required = true } },
        ["auth"] = new Dictionary<string, object?>
        {
            ["type"] = "oauth2_authorization_code",
            ["authorization_url"] = "{{ config.base_url }}/authorize",
            ["token_url"] = "{{ config.base_url }}/token",
            ["client_id"] = "{{ credentials.client_id }}",
            ["client_secret"] = "{{ credentials.client_secret }}",
            ["scopes"] = new[] { "read", "offline" },
            ["authorization_params"] = new { access_type = "offline", prompt = "consent" },
        },
        ["steps"] = new[] { new { id = "me", request = new { method = "GET", path = "/me" }, extract = new { name = "$.name" } } },
        ["output"] = new { name = "{{ steps.me.name }}" },
    };

    private static async Task<string> ConnectorAsync(TeamWorkspace team, Provider provider) =>
        (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new
        {
            name = "oauth-" + Guid.NewGuid().ToString("N")[..8],
            manifest = Manifest(),
            config = new { base_url = provider.Stub.Url },
        })).AssertStatusAsync(201)).GetProperty("id").GetString()!;

    private static async Task<JsonElement> StartAsync(Actor actor, TeamWorkspace team, object body, int status = 201) =>
        await (await actor.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start", body)).AssertStatusAsync(status);

    private static object Client(string connectorId, string? redirectTo = null) =>
        new { connector_id = connectorId, client_id = Provider.ClientId, client_secret = Provider.ClientSecret, redirect_to = redirectTo };

    /// <summary>What the browser does: opens the consent URL, is sent back to Plugboard's callback with the code.</summary>
    private static async Task<Uri> ConsentAsync(JsonElement started)
    {
        using var browser = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
        var consent = await browser.GetAsync(started.GetProperty("authorization_url").GetString());
        Assert.Equal(HttpStatusCode.Redirect, consent.StatusCode);
        return consent.Headers.Location!;
    }

    private static HttpClient Browser() => new(new SocketsHttpHandler { AllowAutoRedirect = false });

    private async Task<JsonElement> RunAsync(TeamWorkspace team, string connectorId)
    {
        var response = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/executions", new { inputs = new { } });
        await response.AssertStatusAsync(202);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var execution = await (await team.Member.Http.GetAsync(response.Headers.Location)).AssertStatusAsync(200);
            if (execution.GetProperty("status").GetString() is "succeeded" or "failed" or "timed_out")
            {
                return execution;
            }
            Assert.True(DateTime.UtcNow < deadline, "execution did not finish");
            await Task.Delay(50);
        }
    }

    private async Task<Dictionary<string, string>> StoredFieldsAsync(string workspaceId, string credentialId)
    {
        var encrypted = await server.OwnerScalarAsync<string>("SELECT encrypted_payload FROM workspace_api_credentials WHERE id = @id", new { id = Guid.Parse(credentialId) });
        return JsonSerializer.Deserialize<Dictionary<string, string>>(server.Keys.Decrypt(encrypted,
            Plugboard.Security.KeyRing.Aad(workspaceId, "workspace_api_credentials", Guid.Parse(credentialId), "encrypted_payload")))!;
    }

    [Fact]
    public async Task Connecting_an_account_stores_its_tokens_as_the_connectors_credential_and_runs_use_and_refresh_them()
    {
        await using var provider = await Provider.StartAsync();
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);

        var started = await StartAsync(team.Admin, team, Client(connectorId));
        Assert.Equal("pending", started.GetProperty("status").GetString());
        var authorization = new Uri(started.GetProperty("authorization_url").GetString()!);
        Assert.Equal(provider.Stub.Url + "/authorize", authorization.GetLeftPart(UriPartial.Path));
        var query = QueryHelpers.ParseQuery(authorization.Query);
        Assert.Equal(("code", Provider.ClientId, "read offline", "S256", "offline", "consent"),
            (query["response_type"].ToString(), query["client_id"].ToString(), query["scope"].ToString(), query["code_challenge_method"].ToString(),
                query["access_type"].ToString(), query["prompt"].ToString()));
        Assert.Equal(new Uri(server.BaseAddress, "/v1/oauth/callback").AbsoluteUri, query["redirect_uri"].ToString());
        Assert.Equal(started.GetProperty("redirect_uri").GetString(), query["redirect_uri"].ToString());
        Assert.True(query["state"].ToString().Length >= 43);
        Assert.DoesNotContain(Provider.ClientSecret, started.ToString());

        using var browser = Browser();
        var callback = await browser.GetAsync(await ConsentAsync(started));
        Assert.Equal(HttpStatusCode.OK, callback.StatusCode);
        Assert.StartsWith("text/html", callback.Content.Headers.ContentType!.ToString());
        Assert.Contains("Account connected", await callback.Content.ReadAsStringAsync());

        var status = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/oauth/{started.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal("completed", status.GetProperty("status").GetString());
        var credentialId = status.GetProperty("credential_id").GetString()!;
        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(credentialId, connector.GetProperty("credential_id").GetString());
        var credential = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/{credentialId}")).AssertStatusAsync(200);
        Assert.Equal("oauth2_authorization_code", credential.GetProperty("auth_type").GetString());
        Assert.Equal(["access_token", "access_token_expires_at", "client_id", "client_secret", "refresh_token"],
            credential.GetProperty("secret_fields").EnumerateArray().Select(f => f.GetString()!).ToArray());
        var stored = await StoredFieldsAsync(team.Id, credentialId);
        Assert.Equal(provider.AccessToken, stored["access_token"]);
        Assert.DoesNotContain("code_verifier", stored.Keys);
        Assert.Equal(1L, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM audit_log WHERE workspace_id = @ws AND action = 'credential.created' AND target_id = @credentialId AND actor_user_id = @admin",
            new { ws = team.Id, credentialId, admin = team.Admin.UserId }));

        var run = await RunAsync(team, connectorId);
        Assert.True(run.GetProperty("status").GetString() == "succeeded", run.ToString());
        Assert.Equal("Ada", run.GetProperty("output").GetProperty("name").GetString());

        // The provider revokes the token: the run refreshes with the stored refresh token and carries on.
        provider.RefusedToken = provider.AccessToken;
        var refreshed = await RunAsync(team, connectorId);
        Assert.True(refreshed.GetProperty("status").GetString() == "succeeded", refreshed.ToString());
        Assert.Equal(1, provider.Refreshes);
        Assert.Equal(provider.AccessToken, (await StoredFieldsAsync(team.Id, credentialId))["access_token"]);

        // Connecting again (renewed consent) replaces the same credential instead of adding one.
        var again = await StartAsync(team.Admin, team, Client(connectorId));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(await ConsentAsync(again))).StatusCode);
        var renewed = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/oauth/{again.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal(credentialId, renewed.GetProperty("credential_id").GetString());
        Assert.Equal(1L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @ws AND auth_type = 'oauth2_authorization_code'", new { ws = team.Id }));
    }

    [Fact]
    public async Task A_state_is_good_for_one_callback_within_its_lifetime_and_only_if_this_server_issued_it()
    {
        await using var provider = await Provider.StartAsync();
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);
        using var browser = Browser();

        var started = await StartAsync(team.Admin, team, Client(connectorId));
        var back = await ConsentAsync(started);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(back)).StatusCode);
        var replay = await (await browser.GetAsync(back)).AssertProblemAsync(400, "oauth-state-invalid");
        Assert.Contains("used already", replay.GetProperty("detail").GetString());

        var forged = await (await browser.GetAsync($"{server.BaseAddress}v1/oauth/callback?code=x&state={Guid.NewGuid():N}{Guid.NewGuid():N}")).AssertProblemAsync(400, "oauth-state-invalid");
        Assert.Contains("not issued by this server", forged.GetProperty("detail").GetString());
        await (await browser.GetAsync($"{server.BaseAddress}v1/oauth/callback?code=x")).AssertProblemAsync(400, "oauth-state-invalid");

        var late = await StartAsync(team.Admin, team, Client(connectorId));
        await server.OwnerExecuteAsync("UPDATE oauth_authorizations SET expires_at = now() - interval '1 second' WHERE id = @id", new { id = Guid.Parse(late.GetProperty("id").GetString()!) });
        var expired = await (await browser.GetAsync(await ConsentAsync(late))).AssertProblemAsync(400, "oauth-state-invalid");
        Assert.Contains("expired", expired.GetProperty("detail").GetString());
        var lateStatus = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/oauth/{late.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal("expired", lateStatus.GetProperty("status").GetString());

        // Another workspace sees neither the attempt nor its credential; its admins cannot start one for this connector.
        var other = await server.TeamAsync();
        await (await other.Admin.Http.GetAsync($"/v1/workspaces/{other.Id}/credentials/oauth/{started.GetProperty("id").GetString()}")).AssertProblemAsync(404, "not-found");
        await (await other.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{other.Id}/credentials/oauth/start", Client(connectorId))).AssertProblemAsync(404, "not-found");
        await (await other.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/oauth/{started.GetProperty("id").GetString()}")).AssertProblemAsync(404, "not-found");
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @ws", new { ws = other.Id }));
    }

    [Fact]
    public async Task A_refused_consent_or_a_failed_exchange_stores_nothing_and_says_why()
    {
        await using var provider = await Provider.StartAsync();
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);
        using var browser = Browser();

        // The user clicked "deny": the provider comes back with error=access_denied.
        var denied = await StartAsync(team.Admin, team, Client(connectorId, redirectTo: "https://app.example.test/connected?tab=accounts"));
        var state = QueryHelpers.ParseQuery(new Uri(denied.GetProperty("authorization_url").GetString()!).Query)["state"].ToString();
        var back = await browser.GetAsync($"{server.BaseAddress}v1/oauth/callback?state={state}&error=access_denied&error_description=The+user+said+no");
        Assert.Equal(HttpStatusCode.Redirect, back.StatusCode);
        var target = back.Headers.Location!;
        Assert.Equal("https://app.example.test/connected", target.GetLeftPart(UriPartial.Path));
        var sent = QueryHelpers.ParseQuery(target.Query);
        Assert.Equal(("accounts", "failed", denied.GetProperty("id").GetString()), (sent["tab"].ToString(), sent["status"].ToString(), sent["oauth_id"].ToString()));
        Assert.Contains("access_denied", sent["error"].ToString());

        // The token endpoint refuses the code.
        provider.RefuseExchange = true;
        var refused = await StartAsync(team.Admin, team, Client(connectorId));
        var problem = await (await browser.GetAsync(await ConsentAsync(refused))).AssertProblemAsync(400, "oauth-failed");
        Assert.Contains("invalid_grant", problem.GetProperty("detail").GetString());
        Assert.DoesNotContain(Provider.ClientSecret, problem.ToString());
        var status = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/oauth/{refused.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal("failed", status.GetProperty("status").GetString());
        Assert.Contains("HTTP 400", status.GetProperty("error").GetString());
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @ws", new { ws = team.Id }));
        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, connector.GetProperty("credential_id").ValueKind);
    }

    [Fact]
    public async Task Starting_needs_an_admin_and_a_manifest_whose_auth_is_the_authorization_code_flow()
    {
        await using var provider = await Provider.StartAsync();
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);

        await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start", Client(connectorId))).AssertProblemAsync(403, "forbidden");
        var both = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start",
            new { connector_id = connectorId, template_id = Guid.NewGuid(), client_id = "x" })).AssertProblemAsync(422, "validation-failed");
        Assert.Contains("exactly one", both.GetProperty("detail").GetString());
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start",
            new { connector_id = connectorId })).AssertProblemAsync(422, "validation-failed");
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start",
            new { connector_id = connectorId, client_id = "x", redirect_to = "javascript:alert(1)" })).AssertProblemAsync(422, "validation-failed");

        var plain = new { version = 1, base_url = provider.Stub.Url, steps = new[] { new { id = "me", request = new { method = "GET", path = "/me" } } } };
        var wrongAuth = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start",
            new { manifest = plain, client_id = "x" })).AssertProblemAsync(422, "validation-failed");
        Assert.Contains("oauth2_authorization_code", wrongAuth.GetProperty("detail").GetString());

        // An inline manifest works as well as a connector: the credential is created, attached to nothing.
        var inline = await StartAsync(team.Admin, team, new { manifest = Manifest(), config = new { base_url = provider.Stub.Url }, client_id = Provider.ClientId, client_secret = Provider.ClientSecret, name = "Ada's account" });
        using var browser = Browser();
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(await ConsentAsync(inline))).StatusCode);
        Assert.Equal("Ada's account", await server.OwnerScalarAsync<string>("SELECT name FROM workspace_api_credentials WHERE workspace_id = @ws", new { ws = team.Id }));
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials/oauth/start",
            new { manifest = Manifest(), client_id = "x" })).AssertProblemAsync(422, "config-invalid");
    }

    [Fact]
    public async Task A_token_without_expiry_is_used_until_refused_and_then_the_run_asks_to_connect_again()
    {
        await using var provider = await Provider.StartAsync();
        provider.Lasting = true;
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);
        using var browser = Browser();
        var started = await StartAsync(team.Admin, team, Client(connectorId));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(await ConsentAsync(started))).StatusCode);

        var run = await RunAsync(team, connectorId);
        Assert.True(run.GetProperty("status").GetString() == "succeeded", run.ToString());
        provider.RefusedToken = provider.AccessToken;
        var refused = await RunAsync(team, connectorId);
        Assert.Equal("failed", refused.GetProperty("status").GetString());
        Assert.Contains("connect the account again", refused.GetProperty("error").GetString());
        Assert.Equal(0, provider.Refreshes);
    }

    [Fact]
    public async Task A_callback_for_someone_no_longer_an_admin_stores_nothing_and_is_forbidden()
    {
        await using var provider = await Provider.StartAsync();
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, provider);
        var started = await StartAsync(team.Admin, team, Client(connectorId));
        await server.OwnerExecuteAsync("UPDATE workspace_members SET role = 'member' WHERE workspace_id = @ws AND user_id = @user",
            new { ws = team.Id, user = team.Admin.UserId });
        using var browser = Browser();
        var problem = await (await browser.GetAsync(await ConsentAsync(started))).AssertProblemAsync(403, "forbidden");
        Assert.Contains("no longer an admin", problem.GetProperty("detail").GetString());
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Equal("failed", await server.OwnerScalarAsync<string>("SELECT status FROM oauth_authorizations WHERE id = @id",
            new { id = Guid.Parse(started.GetProperty("id").GetString()!) }));
    }
}
