using System.Collections.Concurrent;
using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Microsoft.Playwright;
using Plugboard.Hosting;
using Plugboard.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace Plugboard.Tests;

/// <summary>
/// Dashboard single sign-on against a local OIDC provider on 127.0.0.1 that enforces what a real one does: the
/// registered client and its secret, the redirect URI, PKCE (S256) and single-use codes. Each sign-in is approved at
/// once for whichever email the test sets, so the browser goes there and back without a login form.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class DashboardSignOnTests(PlugboardServer server, Chromium chromium) : IClassFixture<Chromium>
{
    private const string ClientId = "plugboard-dashboard";
    private const string ClientSecret = "idp-client-secret-7f3a";

    private sealed class Provider : IAsyncDisposable
    {
        private readonly RSA _rsa = RSA.Create(2048);
        private readonly ConcurrentDictionary<string, (string Nonce, string Challenge, string RedirectUri)> _codes = new();
        private Stub _stub = null!;
        public string Url => _stub.Url;
        public string Email = "";
        public object EmailVerified = true;
        public string? NonceOverride;
        public string? Error;
        public int Exchanges;

        public static async Task<Provider> StartAsync()
        {
            var provider = new Provider();
            provider._stub = await Stub.StartAsync(app =>
            {
                app.MapGet("/.well-known/openid-configuration", () => Results.Json(new
                {
                    issuer = provider.Url,
                    authorization_endpoint = provider.Url + "/authorize",
                    token_endpoint = provider.Url + "/token",
                    jwks_uri = provider.Url + "/jwks",
                    token_endpoint_auth_methods_supported = new[] { "client_secret_basic" },
                }));
                app.MapGet("/jwks", () => Results.Json(new { keys = new[] { JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(provider._rsa.ExportParameters(false)) { KeyId = "k1" }) } }));
                app.MapGet("/authorize", (HttpRequest r) => provider.Authorize(r));
                app.MapPost("/token", (HttpRequest r) => provider.TokenAsync(r));
            });
            return provider;
        }

        private IResult Authorize(HttpRequest request)
        {
            var q = request.Query;
            var redirect = q["redirect_uri"].ToString();
            if (q["client_id"] != ClientId || q["response_type"] != "code" || q["code_challenge_method"] != "S256" || !q["scope"].ToString().Split(' ').Contains("openid")
                || !redirect.EndsWith("/sign-in/oidc/callback", StringComparison.Ordinal))
            {
                return Results.BadRequest("bad authorization request");
            }
            if (Error is not null)
            {
                return Results.Redirect($"{redirect}?error={Error}&error_description=The+user+said+no&state={Uri.EscapeDataString(q["state"]!)}");
            }
            var code = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            _codes[code] = (q["nonce"].ToString(), q["code_challenge"].ToString(), redirect);
            return Results.Redirect($"{redirect}?code={code}&state={Uri.EscapeDataString(q["state"]!)}");
        }

        private async Task<IResult> TokenAsync(HttpRequest request)
        {
            Interlocked.Increment(ref Exchanges);
            var form = await request.ReadFormAsync();
            var basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{ClientId}:{ClientSecret}"));
            if (request.Headers.Authorization != basic)
            {
                return Results.Json(new { error = "invalid_client" }, statusCode: 401);
            }
            if (form["grant_type"] != "authorization_code" || !_codes.TryRemove(form["code"].ToString(), out var grant) || form["redirect_uri"] != grant.RedirectUri
                || Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString()))) != grant.Challenge)
            {
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            }
            var idToken = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = Url,
                Audience = ClientId,
                Claims = new Dictionary<string, object> { ["email"] = Email, ["email_verified"] = EmailVerified, ["nonce"] = NonceOverride ?? grant.Nonce },
                Subject = new ClaimsIdentity([new Claim("sub", "user-1")]),
                Expires = DateTime.UtcNow.AddMinutes(5),
                SigningCredentials = new SigningCredentials(new RsaSecurityKey(_rsa) { KeyId = "k1" }, SecurityAlgorithms.RsaSha256),
            });
            return Results.Json(new { access_token = "at-1", token_type = "Bearer", id_token = idToken });
        }

        public async ValueTask DisposeAsync()
        {
            await _stub.DisposeAsync();
            _rsa.Dispose();
        }
    }

    private async Task<(WebApplication App, Uri Url)> StartPlugboardAsync(string authority, TextWriter log)
    {
        var app = PlugboardApp.Build([], new PlugboardHostOptions(server.TestHome, "http://127.0.0.1:0", log, CreateKeyRing: false, Mode: HostMode.Api), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword,
            ["PLUGBOARD_KEYS"] = server.Keys.ToJson(),
            ["PLUGBOARD_OIDC_AUTHORITY"] = authority,
            ["PLUGBOARD_OIDC_CLIENT_ID"] = ClientId,
            ["PLUGBOARD_OIDC_CLIENT_SECRET"] = ClientSecret,
            ["PLUGBOARD_OIDC_NAME"] = "Test IdP",
        });
        await app.StartAsync();
        return (app, new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()));
    }

    private static HttpClient Browserless(Uri url, CookieContainer cookies) =>
        new(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = url };

    /// <summary>Follows redirects by hand (the cookie container keeps the cookies), returning the last answer.</summary>
    private static async Task<HttpResponseMessage> FollowAsync(HttpClient http, string path)
    {
        var response = await http.GetAsync(path);
        for (var hops = 0; hops < 5 && response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.Found or HttpStatusCode.SeeOther; hops++)
        {
            var location = response.Headers.Location!;
            response = await http.GetAsync(location.IsAbsoluteUri ? location : new Uri(http.BaseAddress!, location));
        }
        return response;
    }

    [Fact]
    public async Task Single_sign_on_starts_a_session_as_the_user_with_the_verified_email_and_refuses_forged_replayed_or_unvouched_sign_ins()
    {
        await using var idp = await Provider.StartAsync();
        var log = new StringWriter();
        var (app, url) = await StartPlugboardAsync(idp.Url, TextWriter.Synchronized(log));
        await using var appDispose = app;
        var team = await server.TeamAsync();

        // In a browser: the sign-in page offers the provider; there and back, signed in as the admin, on the page asked for.
        idp.Email = team.Admin.Email.ToUpperInvariant(); // emails match case-insensitively
        var page = await chromium.NewPageAsync(url);
        await page.GotoAsync($"/w/{team.Id}/runs");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/sign-in\\?next="));
        await Chromium.AssertAccessibleAsync(page);
        await page.GetByRole(AriaRole.Link, new() { Name = "Sign in with Test IdP" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/w/{team.Id}/runs$"));
        await Expect(page.Locator(".role").First).ToContainTextAsync("admin");
        var cookies = await page.Context.CookiesAsync();
        var session = cookies.Single(c => c.Name == "pb_session");
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.DoesNotContain(cookies, c => c.Name == "pb_oidc"); // the attempt is spent
        var userId = await server.OwnerScalarAsync<Guid?>("SELECT user_id FROM dashboard_sessions WHERE token_hash = sha256(convert_to(@token, 'UTF8'))", new { token = session.Value });
        Assert.Equal(team.Admin.UserId, userId);
        // Signing out revokes the session.
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/sign-in$"));
        using (var replay = new HttpClient { BaseAddress = url })
        {
            replay.DefaultRequestHeaders.Add("Cookie", $"pb_session={session.Value}");
            Assert.Equal(HttpStatusCode.Unauthorized, (await replay.GetAsync("/v1/me")).StatusCode);
        }
        Assert.True(page.ConsoleErrors().Count == 0, string.Join("\n", page.ConsoleErrors()));

        // The session acts as the user: a viewer's session can read but not change.
        idp.Email = team.Viewer.Email;
        var jar = new CookieContainer();
        using var http = Browserless(url, jar);
        var signedIn = await FollowAsync(http, $"/sign-in/oidc?next={Uri.EscapeDataString($"/w/{team.Id}/connectors")}");
        Assert.Equal(HttpStatusCode.OK, signedIn.StatusCode);
        Assert.EndsWith($"/w/{team.Id}/connectors", signedIn.RequestMessage!.RequestUri!.AbsolutePath, StringComparison.Ordinal);
        var me = await (await http.GetAsync("/v1/me")).AssertStatusAsync(200);
        Assert.Equal(team.Viewer.UserId.ToString(), me.GetProperty("user_id").GetString());
        Assert.True(me.GetProperty("key_id").ValueKind == System.Text.Json.JsonValueKind.Null);
        await (await http.GetAsync($"/v1/workspaces/{team.Id}/connectors")).AssertStatusAsync(200);
        var csrf = Plugboard.Features.Dashboard.DashboardSessions.CsrfFor(jar.GetCookies(url)["pb_session"]!.Value);
        using (var create = new HttpRequestMessage(HttpMethod.Post, $"/v1/workspaces/{team.Id}/credentials") { Content = System.Net.Http.Json.JsonContent.Create(new { name = "x", auth_type = "api_key", secret = new { api_key = "k" } }) })
        {
            create.Headers.Add("X-CSRF-Token", csrf);
            await (await http.SendAsync(create)).AssertProblemAsync(403);
        }

        // A user's session dies with the user.
        var leaver = await server.NewUserAsync();
        idp.Email = leaver.Email;
        var leaverJar = new CookieContainer();
        using (var leaving = Browserless(url, leaverJar))
        {
            Assert.Equal(HttpStatusCode.OK, (await FollowAsync(leaving, "/sign-in/oidc")).StatusCode);
            await (await leaving.GetAsync("/v1/me")).AssertStatusAsync(200);
            await server.OwnerScalarAsync<int>("WITH gone AS (DELETE FROM users WHERE id = @id RETURNING 1) SELECT count(*)::int FROM gone", new { id = leaver.UserId });
            Assert.Equal(HttpStatusCode.Unauthorized, (await leaving.GetAsync("/v1/me")).StatusCode);
        }
        idp.Email = team.Viewer.Email;

        // Refused, each with the sign-in page and no session: a callback this browser did not start (no or forged
        // attempt cookie, another state), a replayed code, an ID token with another nonce, an unverified email, an
        // email no user has, and the provider's refusal.
        async Task<(HttpResponseMessage Answer, CookieContainer Jar)> SignInAsync(Func<string, string>? rewriteCallback = null)
        {
            var attempt = new CookieContainer();
            using var client = Browserless(url, attempt);
            var toIdp = await client.GetAsync("/sign-in/oidc");
            Assert.Equal(HttpStatusCode.Redirect, toIdp.StatusCode);
            var attemptCookie = toIdp.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("pb_oidc=", StringComparison.Ordinal)).ToLowerInvariant();
            Assert.Contains("path=/sign-in/oidc", attemptCookie, StringComparison.Ordinal);
            Assert.Contains("httponly", attemptCookie, StringComparison.Ordinal);
            Assert.Contains("samesite=lax", attemptCookie, StringComparison.Ordinal);
            using var idpClient = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
            var back = (await idpClient.GetAsync(toIdp.Headers.Location)).Headers.Location!.ToString();
            return (await client.GetAsync(rewriteCallback?.Invoke(back) ?? back), attempt);
        }
        static async Task RefusedAsync(HttpResponseMessage answer, int status, string text)
        {
            Assert.Equal(status, (int)answer.StatusCode);
            Assert.Contains(text, WebUtility.HtmlDecode(await answer.Content.ReadAsStringAsync()), StringComparison.Ordinal);
            Assert.False(answer.Headers.TryGetValues("Set-Cookie", out var set) && set.Any(c => c.StartsWith("pb_session=", StringComparison.Ordinal) && !c.StartsWith("pb_session=;", StringComparison.Ordinal)));
        }
        var sessionsBefore = await server.OwnerScalarAsync<long>("SELECT count(*) FROM dashboard_sessions WHERE user_id IS NOT NULL");

        var (forgedState, _) = await SignInAsync(back => System.Text.RegularExpressions.Regex.Replace(back, "state=[^&]+", "state=forged"));
        await RefusedAsync(forgedState, 400, "was not started here");
        using (var stranger = new HttpClient { BaseAddress = url })
        {
            // Another browser (no attempt cookie) finishing someone's sign-in: login CSRF.
            using var elsewhere = Browserless(url, new CookieContainer());
            var toIdp = await elsewhere.GetAsync("/sign-in/oidc");
            using var idpClient = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
            var callback = (await idpClient.GetAsync(toIdp.Headers.Location)).Headers.Location!;
            await RefusedAsync(await stranger.GetAsync(callback), 400, "was not started here");
            using var tampered = new HttpRequestMessage(HttpMethod.Get, callback);
            tampered.Headers.Add("Cookie", "pb_oidc=pb1:k1:AAAA");
            await RefusedAsync(await stranger.SendAsync(tampered), 400, "was not started here");
        }
        var replayed = await SignInAsync(); // succeeds; the same callback again finds its attempt spent
        Assert.Equal(HttpStatusCode.Redirect, replayed.Answer.StatusCode);
        using (var again = Browserless(url, replayed.Jar))
        {
            await RefusedAsync(await again.GetAsync(replayed.Answer.RequestMessage!.RequestUri), 400, "was not started here");
        }
        idp.NonceOverride = "another-nonce";
        await RefusedAsync((await SignInAsync()).Answer, 401, "did not check out");
        idp.NonceOverride = null;
        idp.EmailVerified = false;
        await RefusedAsync((await SignInAsync()).Answer, 401, "did not vouch for an email");
        idp.EmailVerified = true;
        idp.Email = "nobody-" + Guid.NewGuid().ToString("N")[..8] + "@example.test";
        await RefusedAsync((await SignInAsync()).Answer, 403, "ask a workspace owner to add you");
        idp.Error = "access_denied";
        await RefusedAsync((await SignInAsync()).Answer, 401, "The user said no");
        idp.Error = null;
        Assert.Equal(sessionsBefore + 1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM dashboard_sessions WHERE user_id IS NOT NULL"));
        await app.StopAsync();
        Assert.DoesNotContain(ClientSecret, log.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(session.Value, log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_id_without_an_https_authority_stops_the_process_with_a_message_naming_the_setting()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["PLUGBOARD_OIDC_CLIENT_ID"] = "x" }).Build();
        var error = Assert.Throws<InvalidSettingException>(() => Plugboard.Features.Dashboard.OidcSignInSettings.FromConfiguration(configuration));
        Assert.Contains("PLUGBOARD_OIDC_AUTHORITY", error.Message, StringComparison.Ordinal);
        var plainHttp = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PLUGBOARD_OIDC_CLIENT_ID"] = "x",
            ["PLUGBOARD_OIDC_AUTHORITY"] = "http://idp.example.test",
        }).Build();
        Assert.Contains("https", Assert.Throws<InvalidSettingException>(() => Plugboard.Features.Dashboard.OidcSignInSettings.FromConfiguration(plainHttp)).Message, StringComparison.Ordinal);
    }
}
