using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public sealed class AuthTests
{
    private static string Manifest(string baseUrl, string auth) => $$$"""
        version: 1
        base_url: "{{{baseUrl}}}"
        auth: {{{auth}}}
        steps:
          - id: me
            request: { method: GET, path: /me }
            extract: { who: "$.who" }
          - id: again
            request: { method: GET, path: /me }
            extract: { who: "$.who" }
        output:
          who: "{{ steps.again.who }}"
        """;

    private static Task<Stub> EchoAuthStub() => Stub.StartAsync(app =>
        app.MapGet("/me", (HttpRequest r) => Results.Json(new { who = $"{r.Headers.Authorization}|{r.Headers["X-API-Key"]}|{r.Query["api_key"]}" })));

    [Fact]
    public async Task Api_key_in_header_and_in_query()
    {
        await using var stub = await EchoAuthStub();
        var header = await Engine.RunAsync(Manifest(stub.Url, "{ type: api_key, in: header, name: X-API-Key, value: \"{{ credentials.key }}\" }"),
            new() { ["key"] = "k-header-123" });
        Engine.Succeeded(header);
        Assert.All(stub.Requests, r => Assert.Equal("k-header-123", r.Headers["X-API-Key"]));

        var query = await Engine.RunAsync(Manifest(stub.Url, "{ type: api_key, in: query, name: api_key, value: \"{{ credentials.key }}\" }"),
            new() { ["key"] = "k-query-456" });
        Engine.Succeeded(query);
        Assert.Contains(stub.Requests, r => r.PathAndQuery == "/me?api_key=k-query-456");
        Assert.DoesNotContain(query.Log, l => l.Url.Contains("k-query-456"));
    }

    [Fact]
    public async Task Bearer_and_basic()
    {
        await using var stub = await EchoAuthStub();
        Engine.Succeeded(await Engine.RunAsync(Manifest(stub.Url, "{ type: bearer, token: \"{{ credentials.token }}\" }"), new() { ["token"] = "tok-abc-123" }));
        Assert.Equal("Bearer tok-abc-123", stub.Requests.Last().Headers["Authorization"]);

        Engine.Succeeded(await Engine.RunAsync(Manifest(stub.Url, "{ type: basic, username: \"{{ credentials.user }}\", password: \"{{ credentials.password }}\" }"),
            new() { ["user"] = "alice", ["password"] = "s3cret-pw" }));
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("alice:s3cret-pw")), stub.Requests.Last().Headers["Authorization"]);
    }

    [Fact]
    public async Task Client_credentials_token_is_fetched_once_per_run_and_used()
    {
        var tokens = 0;
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/token", async (HttpRequest r) =>
            {
                var form = await r.ReadFormAsync();
                Interlocked.Increment(ref tokens);
                return form["grant_type"] == "client_credentials" && form["client_secret"] == "cs-secret-1" && form["scope"] == "read write"
                    ? Results.Json(new { access_token = "cc-access-777", expires_in = 3600 })
                    : Results.BadRequest();
            });
            app.MapGet("/me", (HttpRequest r) => r.Headers.Authorization == "Bearer cc-access-777" ? Results.Json(new { who = "svc" }) : Results.Unauthorized());
        });
        var result = await Engine.RunAsync(Manifest(stub.Url,
                $"{{ type: oauth2_client_credentials, token_url: \"{stub.Url}/token\", client_id: \"{{{{ credentials.client_id }}}}\", client_secret: \"{{{{ credentials.client_secret }}}}\", scopes: [read, write] }}"),
            new() { ["client_id"] = "cid-1", ["client_secret"] = "cs-secret-1" });
        Engine.Succeeded(result);
        Assert.Equal(1, tokens);
        Assert.Equal("svc", (string?)result.Output!["who"]);
    }

    private static string RefreshAuth(string url) =>
        $"{{ type: oauth2_refresh_token, token_url: \"{url}/token\", client_id: \"{{{{ credentials.client_id }}}}\", client_secret: \"{{{{ credentials.client_secret }}}}\", refresh_token: \"{{{{ credentials.refresh_token }}}}\" }}";

    private sealed class OAuthServer
    {
        public int Refreshes;
        public string Current = "";
        public string RefreshToken = "rt-0";

        public void Map(WebApplication app) =>
            app.Use(async (HttpContext context, RequestDelegate next) =>
            {
                if (context.Request.Path == "/token")
                {
                    var form = await context.Request.ReadFormAsync();
                    lock (this)
                    {
                        if (form["refresh_token"] != RefreshToken || form["client_secret"] != "client-secret-9")
                        {
                            context.Response.StatusCode = 400;
                            return;
                        }
                        Refreshes++;
                        Current = $"at-{Refreshes}-xyz";
                        RefreshToken = $"rt-{Refreshes}";
                    }
                    await context.Response.WriteAsJsonAsync(new { access_token = Current, expires_in = 3600, refresh_token = RefreshToken });
                    return;
                }
                if (context.Request.Headers.Authorization != $"Bearer {Current}")
                {
                    context.Response.StatusCode = 401;
                    return;
                }
                await context.Response.WriteAsJsonAsync(new { who = Current });
            });
    }

    private static Dictionary<string, string> Fields(string access, DateTimeOffset expires) => new()
    {
        ["client_id"] = "cid",
        ["client_secret"] = "client-secret-9",
        ["refresh_token"] = "rt-0",
        ["access_token"] = access,
        ["access_token_expires_at"] = expires.ToString("O"),
    };

    [Fact]
    public async Task A_refresh_grant_is_not_sent_again_after_a_timeout()
    {
        var grants = 0;
        await using var stub = await Stub.StartAsync(app => app.MapPost("/token", async (HttpContext c) =>
        {
            Interlocked.Increment(ref grants);
            await Task.Delay(TimeSpan.FromSeconds(10), c.RequestAborted); // the provider may have rotated the token meanwhile
            return Results.Json(new { access_token = "late", expires_in = 3600 });
        }));
        var store = new TestCredentialStore(Fields("old", DateTimeOffset.UtcNow.AddHours(-1)));
        var result = await Engine.RunAsync(Manifest(stub.Url, RefreshAuth(stub.Url)), store.Fields, store: store,
            options: Engine.FastOptions with { DefaultStepTimeout = TimeSpan.FromSeconds(1) });
        Assert.Equal(RunStatus.TimedOut, result.Status);
        Assert.Equal(1, grants);
        Assert.Equal("rt-0", store.Fields["refresh_token"]);
        Assert.Equal(0, store.Updates);
    }

    [Fact]
    public async Task Refresh_token_refreshes_before_expiry_and_persists_the_rotation()
    {
        var server = new OAuthServer { Current = "at-old" };
        await using var stub = await Stub.StartAsync(server.Map);
        var store = new TestCredentialStore(Fields("at-old", DateTimeOffset.UtcNow.AddSeconds(30))); // inside the 60 s skew
        var result = await Engine.RunAsync(Manifest(stub.Url, RefreshAuth(stub.Url)), store.Fields, store: store);
        Engine.Succeeded(result);
        Assert.Equal(1, server.Refreshes);
        Assert.Equal("at-1-xyz", store.Fields["access_token"]);
        Assert.Equal("rt-1", store.Fields["refresh_token"]);
        Assert.True(DateTimeOffset.Parse(store.Fields["access_token_expires_at"]) > DateTimeOffset.UtcNow.AddMinutes(50));
        Assert.DoesNotContain(stub.Requests, r => r.Headers.GetValueOrDefault("Authorization") == "Bearer at-old");
    }

    [Fact]
    public async Task Valid_access_token_is_used_without_refreshing()
    {
        var server = new OAuthServer { Current = "at-still-good" };
        await using var stub = await Stub.StartAsync(server.Map);
        var store = new TestCredentialStore(Fields("at-still-good", DateTimeOffset.UtcNow.AddHours(1)));
        Engine.Succeeded(await Engine.RunAsync(Manifest(stub.Url, RefreshAuth(stub.Url)), store.Fields, store: store));
        Assert.Equal(0, server.Refreshes);
        Assert.Equal(0, store.Updates);
    }

    [Fact]
    public async Task A_401_refreshes_once_and_retries()
    {
        var server = new OAuthServer { Current = "at-revoked-on-server" };
        await using var stub = await Stub.StartAsync(server.Map);
        var store = new TestCredentialStore(Fields("at-revoked", DateTimeOffset.UtcNow.AddHours(1)));
        var result = await Engine.RunAsync(Manifest(stub.Url, RefreshAuth(stub.Url)), store.Fields, store: store);
        Engine.Succeeded(result);
        Assert.Equal(1, server.Refreshes);
        Assert.Equal("rt-1", store.Fields["refresh_token"]);
        Assert.Equal("***", (string?)result.Output!["who"]); // an obtained token echoed into the output is still masked
        Assert.Equal("Bearer at-1-xyz", stub.Requests.Last().Headers["Authorization"]);
        Assert.Contains(result.Log, l => l.Status == 401);
    }

    [Fact]
    public async Task Eight_concurrent_runs_sharing_a_store_refresh_once()
    {
        var server = new OAuthServer { Current = "none" };
        await using var stub = await Stub.StartAsync(server.Map);
        var store = new TestCredentialStore(Fields("at-expired", DateTimeOffset.UtcNow.AddMinutes(-5)));
        var manifest = Manifest(stub.Url, RefreshAuth(stub.Url));
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Engine.RunAsync(manifest, store.Fields, store: store)));
        Assert.All(results, Engine.Succeeded);
        Assert.Equal(1, server.Refreshes);
        Assert.Equal(1, store.Updates);
        Assert.Equal("rt-1", store.Fields["refresh_token"]);
    }

    [Fact]
    public async Task Session_login_runs_first_and_its_token_is_applied()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/login", async (HttpRequest r) =>
            {
                var body = await r.ReadFromJsonAsync<Dictionary<string, string>>();
                return body!["user"] == "bob" && body["password"] == "pw-session-1" ? Results.Json(new { token = "sess-tok-42" }) : Results.Unauthorized();
            });
            app.MapGet("/me", (HttpRequest r) => r.Headers["X-Session"] == "sess-tok-42" ? Results.Json(new { who = "bob" }) : Results.Unauthorized());
        });
        var result = await Engine.RunAsync(Manifest(stub.Url, """
            
              type: session
              login:
                request: { method: POST, path: /login, body: { json: { user: "{{ credentials.user }}", password: "{{ credentials.password }}" } } }
                extract: { token: "$.token" }
              apply:
                headers: { X-Session: "{{ session.token }}" }
            """), new() { ["user"] = "bob", ["password"] = "pw-session-1" });
        Engine.Succeeded(result);
        Assert.Equal("bob", (string?)result.Output!["who"]);
        Assert.Equal("/login", stub.Requests.First().PathAndQuery);
        Assert.DoesNotContain(result.Log, l => (l.ResponseBody ?? "").Contains("sess-tok-42"));
    }
}
