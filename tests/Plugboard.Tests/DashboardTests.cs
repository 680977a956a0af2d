using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>The dashboard over plain HTTP: sessions, CSRF, confinement, headers and encoding (the browser tests drive the pages).</summary>
[Collection(ServerCollection.Name)]
public sealed partial class DashboardTests(PlugboardServer server)
{
    /// <summary>A browser-like client: cookies kept, redirects not followed.</summary>
    private sealed record Browser(HttpClient Http, CookieContainer Cookies, Uri Base)
    {
        public string? SessionCookie => Cookies.GetCookies(Base)["pb_session"]?.Value;
    }

    private Browser NewBrowser()
    {
        var cookies = new CookieContainer();
        var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        return new Browser(http, cookies, server.BaseAddress);
    }

    private static Task<HttpResponseMessage> PostFormAsync(Browser browser, string path, Dictionary<string, string> fields, string? fetchSite = "same-origin")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new FormUrlEncodedContent(fields) };
        if (fetchSite is not null)
        {
            request.Headers.Add("Sec-Fetch-Site", fetchSite);
        }
        return browser.Http.SendAsync(request);
    }

    private async Task<Browser> SignedInAsync(string apiKey)
    {
        var browser = NewBrowser();
        var response = await PostFormAsync(browser, "/sign-in", new() { ["api_key"] = apiKey });
        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.NotNull(browser.SessionCookie);
        return browser;
    }

    [Fact]
    public async Task Template_moderation_pages_are_for_platform_admins_only()
    {
        // A platform developer may list templates through the API, but the moderation queue and review pages are admins'.
        var developer = await SignedInAsync((await server.NewUserAsync("developer")).Key);
        Assert.Equal(HttpStatusCode.Forbidden, (await developer.Http.GetAsync("/platform/templates")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await developer.Http.GetAsync("/v1/admin/templates")).StatusCode);
        var admin = await SignedInAsync((await server.NewUserAsync("admin")).Key);
        Assert.Equal(HttpStatusCode.OK, (await admin.Http.GetAsync("/platform/templates")).StatusCode);
    }

    [Fact]
    public async Task The_records_feed_links_each_title_to_its_stored_document_and_only_http_sources_out()
    {
        var team = await server.TeamAsync();
        var connector = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "Feed" })).AssertStatusAsync(201))
            .GetProperty("id").GetString();
        var (web, script) = (Guid.CreateVersion7(), Guid.CreateVersion7());
        await server.OwnerExecuteAsync(
            """
            INSERT INTO imported_documents (workspace_id, id, connector_id, source, external_id, stream, title, external_url, change_seq, last_action)
            VALUES (@ws, @web, @connector::uuid, 'sync', 'w-1', 'pages', 'On the web', 'https://example.test/page', 1, 'added'),
                   (@ws, @script, @connector::uuid, 'sync', 's-1', 'pages', 'Not a link', 'javascript:alert(1)', 2, 'added')
            """, new { ws = team.Id, web, script, connector });
        var browser = await SignedInAsync(team.Viewer.Key);
        var html = await browser.Http.GetStringAsync($"/w/{team.Id}/connectors/{connector}/records");
        Assert.Contains($"/v1/workspaces/{team.Id}/documents/{web}/content\">On the web</a>", html, StringComparison.Ordinal);
        Assert.Contains($"/v1/workspaces/{team.Id}/documents/{script}/content\">Not a link</a>", html, StringComparison.Ordinal);
        Assert.Contains("<a href=\"https://example.test/page\" rel=\"noopener noreferrer\">open</a>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("javascript:", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_review_page_names_the_workspace_that_made_a_template_and_the_studio_loads_its_own_script()
    {
        var team = await server.TeamAsync();
        var slug = "review-" + Guid.NewGuid().ToString("N")[..8];
        var template = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/templates", new { slug, name = "Reviewed", manifest = TestManifests.Minimal() }))
            .AssertStatusAsync(201)).GetProperty("id").GetString();
        var admin = await SignedInAsync((await server.NewUserAsync("admin")).Key);
        Assert.Contains($"(workspace {team.Id})", await admin.Http.GetStringAsync($"/platform/templates/{template}"), StringComparison.Ordinal);

        var studio = await (await SignedInAsync(team.Admin.Key)).Http.GetStringAsync($"/w/{team.Id}/studio");
        var src = Regex.Match(studio, "<script src=\"(/assets/studio\\.js\\?v=[0-9a-f]{12})\" defer>").Groups[1].Value;
        Assert.NotEmpty(src);
        var served = await admin.Http.GetAsync(src);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Contains("javascript", served.Content.Headers.ContentType!.MediaType, StringComparison.Ordinal);
    }

    private static async Task<string> CsrfAsync(Browser browser, string workspaceId)
    {
        var page = await browser.Http.GetStringAsync($"/w/{workspaceId}/connectors");
        return CsrfMeta().Match(page).Groups[1].Value;
    }

    [GeneratedRegex("<meta name=\"csrf-token\" content=\"([^\"]+)\"")]
    private static partial Regex CsrfMeta();

    private static HttpRequestMessage Json(HttpMethod method, string path, object body, string? csrf)
    {
        var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        if (csrf is not null)
        {
            request.Headers.Add("X-CSRF-Token", csrf);
        }
        return request;
    }

    [Fact]
    public async Task Signing_in_exchanges_the_key_for_an_http_only_strict_session_cookie_that_sign_out_revokes()
    {
        var team = await server.TeamAsync();
        var browser = NewBrowser();
        // Not signed in: pages send the visitor to the sign-in page and back.
        var anonymous = await browser.Http.GetAsync($"/w/{team.Id}/connectors");
        Assert.Equal(HttpStatusCode.Found, anonymous.StatusCode);
        Assert.Equal($"/sign-in?next={Uri.EscapeDataString($"/w/{team.Id}/connectors")}", anonymous.Headers.Location!.OriginalString);

        var bad = await PostFormAsync(browser, "/sign-in", new() { ["api_key"] = "pb_" + new string('x', 40) });
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        Assert.Contains("unknown, revoked or expired", await bad.Content.ReadAsStringAsync());
        Assert.Null(browser.SessionCookie);

        var signIn = await PostFormAsync(browser, "/sign-in", new() { ["api_key"] = team.Member.Key, ["next"] = $"/w/{team.Id}/runs" });
        Assert.Equal(HttpStatusCode.Found, signIn.StatusCode);
        Assert.Equal($"/w/{team.Id}/runs", signIn.Headers.Location!.OriginalString);
        var setCookie = signIn.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("pb_session=", StringComparison.Ordinal));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(team.Member.Key, setCookie, StringComparison.Ordinal); // the key itself never reaches the browser
        var token = browser.SessionCookie!;
        // Only the token's hash is stored; the session lasts PLUGBOARD_SESSION_HOURS (12 by default).
        var hours = await server.OwnerScalarAsync<double>(
            "SELECT extract(epoch FROM expires_at - now()) / 3600 FROM dashboard_sessions WHERE token_hash = sha256(convert_to(@token, 'UTF8'))", new { token });
        Assert.InRange(hours, 11.9, 12.0);
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM dashboard_sessions WHERE encode(token_hash, 'escape') LIKE '%' || @token || '%'", new { token }));

        // The session reads pages and the API as the member.
        var page = await browser.Http.GetAsync($"/w/{team.Id}/connectors");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains(">member<", await page.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await browser.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors")).StatusCode);

        // Sign-out (a form post with the CSRF token) ends the session on the server, not only in this browser.
        var csrf = await CsrfAsync(browser, team.Id);
        var signOut = await PostFormAsync(browser, "/sign-out", new() { ["_csrf"] = csrf });
        Assert.Equal(HttpStatusCode.Found, signOut.StatusCode);
        var replayed = NewBrowser();
        replayed.Cookies.Add(server.BaseAddress, new Cookie("pb_session", token));
        await (await replayed.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors")).AssertProblemAsync(401);
        Assert.Equal(HttpStatusCode.Found, (await replayed.Http.GetAsync($"/w/{team.Id}/connectors")).StatusCode);
    }

    [Fact]
    public async Task State_changes_by_session_need_the_csrf_token_and_bearer_keys_do_not()
    {
        var team = await server.TeamAsync();
        var browser = await SignedInAsync(team.Admin.Key);
        var path = $"/v1/workspaces/{team.Id}/connectors";
        var noToken = await browser.Http.SendAsync(Json(HttpMethod.Post, path, new { name = "no-token" }, null));
        await noToken.AssertProblemAsync(403, "csrf");
        var wrongToken = await browser.Http.SendAsync(Json(HttpMethod.Post, path, new { name = "wrong-token" }, "AAAA" + new string('b', 39)));
        await wrongToken.AssertProblemAsync(403, "csrf");
        // Another session's token is not this session's.
        var other = await SignedInAsync(team.Admin.Key);
        var othersToken = await CsrfAsync(other, team.Id);
        await (await browser.Http.SendAsync(Json(HttpMethod.Post, path, new { name = "other-token" }, othersToken))).AssertProblemAsync(403, "csrf");
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id", new { id = team.Id }));
        // A form post without the field is refused too (sign-out here).
        await (await PostFormAsync(browser, "/sign-out", new())).AssertProblemAsync(403, "csrf");

        var created = await browser.Http.SendAsync(Json(HttpMethod.Post, path, new { name = "with-token" }, await CsrfAsync(browser, team.Id)));
        await created.AssertStatusAsync(201);
        // An API key in the Authorization header is not exposed to CSRF: no token needed.
        await (await team.Admin.Http.PostAsJsonAsync(path, new { name = "by-key" })).AssertStatusAsync(201);
    }

    [Fact]
    public async Task A_session_is_confined_and_capped_like_its_key_and_dies_with_it()
    {
        var team = await server.TeamAsync();
        var elsewhere = await server.CreateWorkspaceAsync(team.Owner, "Elsewhere");
        var keyExpires = DateTimeOffset.UtcNow.AddHours(2);
        var minted = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "viewer-cap", role = "viewer", expires_at = keyExpires })).AssertStatusAsync(201);
        var browser = await SignedInAsync(minted.GetProperty("key").GetString()!);
        // A session never outlives its key.
        var sessionEnds = await server.OwnerScalarAsync<DateTime>("SELECT max(expires_at) FROM dashboard_sessions WHERE api_key_id = @id",
            new { id = Guid.Parse(minted.GetProperty("id").GetString()!) });
        Assert.True(Math.Abs((sessionEnds - keyExpires.UtcDateTime).TotalSeconds) < 1, $"{sessionEnds:O} vs {keyExpires:O}");
        var page = await (await browser.Http.GetAsync($"/w/{team.Id}/connectors")).Content.ReadAsStringAsync();
        Assert.Contains(">viewer<", page);
        Assert.DoesNotContain("Install a connector", page); // no edit controls for a viewer
        // The owner's other workspace is not reachable through a session of a key confined to this one.
        Assert.Equal(HttpStatusCode.NotFound, (await browser.Http.GetAsync($"/w/{elsewhere}/connectors")).StatusCode);
        await (await browser.Http.GetAsync($"/v1/workspaces/{elsewhere}/connectors")).AssertProblemAsync(404);
        // The cap holds on the API whatever the page shows.
        var csrf = await CsrfAsync(browser, team.Id);
        await (await browser.Http.SendAsync(Json(HttpMethod.Post, $"/v1/workspaces/{team.Id}/connectors", new { name = "x" }, csrf))).AssertProblemAsync(403);

        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/api-keys/{minted.GetProperty("id").GetString()}")).AssertStatusAsync(204);
        await (await browser.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors")).AssertProblemAsync(401);
        var after = await browser.Http.GetAsync($"/w/{team.Id}/connectors");
        Assert.Equal(HttpStatusCode.Found, after.StatusCode);
        Assert.StartsWith("/sign-in", after.Headers.Location!.OriginalString);
        // A revoked key cannot start a session either.
        var again = await PostFormAsync(NewBrowser(), "/sign-in", new() { ["api_key"] = minted.GetProperty("key").GetString()! });
        Assert.Equal(HttpStatusCode.Unauthorized, again.StatusCode);
    }

    [Fact]
    public async Task Sign_in_from_another_site_and_redirects_off_site_are_refused()
    {
        var team = await server.TeamAsync();
        var browser = NewBrowser();
        var crossSite = await PostFormAsync(browser, "/sign-in", new() { ["api_key"] = team.Member.Key }, fetchSite: "cross-site");
        Assert.Equal(HttpStatusCode.Forbidden, crossSite.StatusCode);
        Assert.Null(browser.SessionCookie);
        foreach (var next in new[] { "//evil.example/", "https://evil.example/", "/\\evil.example" })
        {
            var response = await PostFormAsync(NewBrowser(), "/sign-in", new() { ["api_key"] = team.Member.Key, ["next"] = next });
            Assert.Equal("/", response.Headers.Location!.OriginalString);
        }
    }

    [Fact]
    public async Task Pages_carry_a_strict_content_security_policy_and_render_hostile_names_as_text()
    {
        var team = await server.TeamAsync();
        const string payload = "<script>alert('pwned')</script><img src=x onerror=alert(1)>";
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors",
            new { name = payload, description = payload, config = new { note = payload } })).AssertStatusAsync(201);
        var browser = await SignedInAsync(team.Viewer.Key);
        foreach (var path in new[] { $"/w/{team.Id}/connectors", $"/w/{team.Id}/connectors/{connector.GetProperty("id").GetString()}", "/sign-in?next=%22%3E%3Cscript%3E" })
        {
            var response = await browser.Http.GetAsync(path);
            var html = await response.Content.ReadAsStringAsync();
            var csp = response.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("script-src 'self'", csp);
            Assert.DoesNotContain("unsafe-inline", csp);
            Assert.Contains("frame-ancestors 'none'", csp);
            Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.True(response.Headers.CacheControl!.NoStore);
            Assert.DoesNotContain("<script>alert", html);
            Assert.DoesNotContain("<img src=x", html);
            Assert.DoesNotContain("\"><script>", html);
            // The only scripts are the dashboard's own file.
            Assert.All(ScriptTags().Matches(html), m => Assert.Matches("^<script src=\"/assets/dashboard\\.js\\?v=[0-9a-f]{12}\" defer>$", m.Value));
        }
        var list = await browser.Http.GetStringAsync($"/w/{team.Id}/connectors");
        Assert.Contains("&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;", list);
    }

    [GeneratedRegex("<script[^>]*>")]
    private static partial Regex ScriptTags();

    [Fact]
    public async Task Errors_are_pages_and_other_workspaces_do_not_exist()
    {
        var team = await server.TeamAsync();
        var outsider = await server.TeamAsync();
        var connector = await (await outsider.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{outsider.Id}/connectors", new { name = "theirs" })).AssertStatusAsync(201);
        var browser = await SignedInAsync(team.Owner.Key);
        foreach (var path in new[] { $"/w/{outsider.Id}/connectors", $"/w/{team.Id}/connectors/{connector.GetProperty("id").GetString()}", $"/w/{team.Id}/runs?status=bogus" })
        {
            var response = await browser.Http.GetAsync(path);
            Assert.True(response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{path}: {response.StatusCode}");
            Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
            var html = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain("theirs", html);
        }
        // The home page goes to the caller's workspace.
        var home = await browser.Http.GetAsync("/");
        Assert.Equal($"/w/{team.Id}/connectors", home.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Assets_are_served_from_the_executable_with_immutable_caching()
    {
        var browser = NewBrowser();
        var signIn = await browser.Http.GetStringAsync("/sign-in");
        var href = Regex.Match(signIn, "href=\"(/assets/dashboard\\.css\\?v=[0-9a-f]+)\"").Groups[1].Value;
        var css = await browser.Http.GetAsync(href);
        Assert.Equal(HttpStatusCode.OK, css.StatusCode);
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
        Assert.Contains("immutable", css.Headers.CacheControl!.ToString());
        Assert.Equal(HttpStatusCode.NotFound, (await browser.Http.GetAsync("/assets/..%2Fplugboard.dll")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await browser.Http.GetAsync("/assets/missing.js")).StatusCode);
    }

    [Fact]
    public async Task An_expired_session_signs_nobody_in()
    {
        var team = await server.TeamAsync();
        var browser = await SignedInAsync(team.Member.Key);
        await server.OwnerExecuteAsync("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = sha256(convert_to(@token, 'UTF8'))",
            new { token = browser.SessionCookie });
        await (await browser.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors")).AssertProblemAsync(401);
        Assert.Equal(HttpStatusCode.Found, (await browser.Http.GetAsync($"/w/{team.Id}/connectors")).StatusCode);
    }

    [Fact]
    public async Task The_switcher_lists_the_callers_workspaces_and_the_marketplace_filters()
    {
        var team = await server.TeamAsync();
        var second = await server.CreateWorkspaceAsync(team.Owner, "Second <b>space</b>");
        var browser = await SignedInAsync(team.Owner.Key);
        Assert.Contains("<span class=\"workspace\">Test workspace</span>", await browser.Http.GetStringAsync($"/w/{team.Id}/connectors"));
        var page = await browser.Http.GetStringAsync("/switch");
        Assert.Contains($"<a href=\"/w/{team.Id}/connectors\">Test workspace</a>", page);
        Assert.Contains($"<a href=\"/w/{second}/connectors\">Second &lt;b&gt;space&lt;/b&gt;</a>", page);
        Assert.Equal(HttpStatusCode.Found, (await NewBrowser().Http.GetAsync("/switch")).StatusCode);
        var switched = await browser.Http.GetAsync($"/switch?workspace={second}");
        Assert.Equal($"/w/{second}/connectors", switched.Headers.Location!.OriginalString);
        Assert.Contains("Generic REST API (API key)", await browser.Http.GetStringAsync($"/w/{team.Id}/marketplace?q=generic"));
        Assert.DoesNotContain("Generic REST API (API key)", await browser.Http.GetStringAsync($"/w/{team.Id}/marketplace?kind=community"));
        Assert.DoesNotContain("Generic REST API (API key)", await browser.Http.GetStringAsync($"/w/{team.Id}/marketplace?q=zzz-no-such-template"));
        // Categories: offered from the published templates, and filtering.
        var meetings = await browser.Http.GetStringAsync($"/w/{team.Id}/marketplace?category=meetings");
        Assert.Contains("<option value=\"meetings\" selected>meetings</option>", meetings);
        Assert.Contains("<option value=\"developer-tools\">developer-tools</option>", meetings);
        Assert.Contains("Zoom", meetings);
        Assert.DoesNotContain("Generic REST API (API key)", meetings);
    }

    [Theory]
    [InlineData("http", null, false)]
    [InlineData("https", null, true)]
    [InlineData("http", "https://plugboard.example.com", true)] // TLS ended by a proxy in front
    [InlineData("http", "http://127.0.0.1:5080", false)]
    public void The_session_cookie_is_secure_whenever_browsers_reach_plugboard_over_https(string scheme, string? publicUrl, bool secure)
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection()
            .AddSingleton(new Plugboard.Features.Credentials.OAuthSettings(publicUrl is null ? null : new Uri(publicUrl), TimeSpan.FromMinutes(10)))
            .BuildServiceProvider();
        var http = new Microsoft.AspNetCore.Http.DefaultHttpContext { RequestServices = services };
        http.Request.Scheme = scheme;
        Plugboard.Features.Dashboard.DashboardSessions.SetCookie(http, "pbs_token", DateTimeOffset.UtcNow.AddHours(1));
        var cookie = http.Response.Headers.SetCookie.ToString();
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(secure, cookie.Contains("secure", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task The_api_role_cannot_read_or_write_sessions_directly()
    {
        await using var api = new Npgsql.NpgsqlConnection(server.Settings.ApiConnectionString);
        await api.OpenAsync();
        foreach (var sql in new[] { "SELECT * FROM dashboard_sessions", "DELETE FROM dashboard_sessions", "UPDATE dashboard_sessions SET expires_at = now() + interval '10 years'" })
        {
            var e = await Assert.ThrowsAsync<Npgsql.PostgresException>(async () =>
            {
                await using var command = new Npgsql.NpgsqlCommand(sql, api);
                await command.ExecuteNonQueryAsync();
            });
            Assert.Equal("42501", e.SqlState);
        }
    }
}
