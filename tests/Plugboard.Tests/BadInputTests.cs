using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Every endpoint the server maps, fed malformed, mistyped, unknown-field, oversized, non-JSON, unauthenticated,
/// revoked-key and invalid-id requests: the right 4xx with a problem body, never a 500, and nothing written.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class BadInputTests(PlugboardServer server)
{
    private sealed record Route(string Method, string Pattern, bool TakesBody, bool BodyOptional = false, bool Anonymous = false);

    private IReadOnlyList<Route> ApiRoutes() =>
        server.Service<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith("/v1", StringComparison.Ordinal))
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Select(m =>
                new Route(m, e.RoutePattern.RawText!.TrimEnd('/'), e.Metadata.GetMetadata<IAcceptsMetadata>() is not null,
                    e.Metadata.GetMetadata<IAcceptsMetadata>()?.IsOptional == true, e.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAllowAnonymous>() is not null)))
            .ToList();

    private static string Fill(string pattern, string workspaceId, string id) =>
        System.Text.RegularExpressions.Regex.Replace(pattern.Replace("{workspaceId}", workspaceId, StringComparison.Ordinal), @"\{[a-zA-Z]+(:guid)?\}", id);

    private async Task<string> RowCountsAsync() =>
        await server.OwnerScalarAsync<string>(
            """
            SELECT string_agg(format('%s=%s', c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', c.relname), false, true, '')))[1]::text), ',' ORDER BY c.relname)
              FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
            """);

    [Fact]
    public void The_api_has_the_endpoints_this_test_walks()
    {
        var routes = ApiRoutes();
        Assert.True(routes.Count >= 35, $"only {routes.Count} routes");
        Assert.Contains(routes, r => r is { Method: "POST", Pattern: "/v1/workspaces/{workspaceId}/credentials", TakesBody: true });
    }

    [Fact]
    public async Task Malformed_mistyped_unknown_oversized_and_non_json_bodies_are_refused_without_writes()
    {
        var team = await server.TeamAsync();
        var connector = (await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "target" })).AssertStatusAsync(201)).GetProperty("id").GetString()!;
        var before = await RowCountsAsync();
        var bodies = new (string Name, Func<HttpContent> Content, int Status)[]
        {
            ("malformed", () => HttpAssertions.RawJson("{\"name\": \"x\""), 400),
            ("not an object", () => HttpAssertions.RawJson("[1, 2, 3]"), 400),
            ("wrong types", () => HttpAssertions.RawJson("{\"name\": {\"nested\": true}, \"role\": 7, \"manifest\": \"text\"}"), 400),
            ("unknown field", () => HttpAssertions.RawJson("{\"zzz_unknown\": 1}"), 400),
            ("oversized", () => HttpAssertions.RawJson("{\"name\": \"" + new string('a', 1_200_000) + "\"}"), 413),
            ("not json", () => new StringContent("name=x", Encoding.UTF8, "application/x-www-form-urlencoded"), 415),
            ("empty", () => HttpAssertions.RawJson(""), 400),
            ("deeply nested", () => HttpAssertions.RawJson("{\"manifest\":" + string.Concat(Enumerable.Repeat("{\"a\":", 100)) + "1" + new string('}', 100) + "}"), 400),
        };
        var failures = new List<string>();
        foreach (var route in ApiRoutes().Where(r => r.TakesBody))
        {
            var path = Fill(route.Pattern, team.Id, connector);
            foreach (var (name, content, status) in bodies)
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), path) { Content = content() };
                // Large uploads announce themselves, so the server can refuse before the body is sent.
                request.Headers.ExpectContinue = name == "oversized";
                var response = await team.Owner.Http.SendAsync(request);
                // An endpoint whose body is optional treats an empty body as no body: any 4xx but never a 500.
                var ok = name == "empty" && route.BodyOptional ? (int)response.StatusCode is >= 400 and < 500 : (int)response.StatusCode == status;
                if (!ok || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{route.Method} {route.Pattern} with {name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(30)));
        Assert.Equal(before, await RowCountsAsync());
    }

    [Fact]
    public async Task A_client_that_sends_an_8_mib_body_before_reading_gets_a_413_problem_not_a_reset()
    {
        var team = await server.TeamAsync();
        var before = await RowCountsAsync();
        var body = "{\"name\": \"" + new string('a', 8 * 1024 * 1024 - 16) + "\"}";
        for (var i = 0; i < 3; i++)
        {
            using var client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { BaseAddress = server.BaseAddress };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", team.Owner.Key);
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/workspaces/{team.Id}/connectors") { Content = HttpAssertions.RawJson(body) };
            request.Headers.ExpectContinue = false; // the whole body goes out before the answer is read
            var response = await client.SendAsync(request);
            var problem = await response.AssertProblemAsync(413, "payload-too-large");
            Assert.Contains("1024 KiB", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal(before, await RowCountsAsync());
    }

    /// <summary>Requests the HTTP server itself refuses (before any middleware) still get a problem body — also after an
    /// ordinary request on the same keep-alive connection, whose answer is untouched.</summary>
    [Fact]
    public async Task Requests_the_http_server_refuses_get_a_problem_body()
    {
        var team = await server.TeamAsync();
        foreach (var path in new[] { "/v1/%00", $"/v1/workspaces/{team.Id}/connectors/%00", "/healthz%00" })
        {
            var problem = await (await team.Owner.Http.GetAsync(path)).AssertProblemAsync(400, "bad-request");
            Assert.Contains("%00", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.False(problem.TryGetProperty("trace_id", out _)); // refused before any request existed
        }
        using var longHeaders = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        longHeaders.Headers.Add("X-Padding", new string('a', 40 * 1024));
        await (await team.Owner.Http.SendAsync(longHeaders)).AssertProblemAsync(431, "request-headers-too-large");
        await (await team.Owner.Http.GetAsync("/v1/templates?q=" + new string('a', 9 * 1024))).AssertProblemAsync(414, "uri-too-long");

        // Raw HTTP/1.1: a good request, then a malformed one, on one connection.
        using var socket = new System.Net.Sockets.TcpClient();
        await socket.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        var stream = socket.GetStream();
        var host = server.BaseAddress.Authority;
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\nGET /v1/%00 HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var answers = await reader.ReadToEndAsync(); // the server closes the connection after the refusal
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", answers, StringComparison.Ordinal);
        Assert.Contains("{\"status\":\"ok\"}", answers, StringComparison.Ordinal);
        var refusal = answers[answers.IndexOf("HTTP/1.1 400", StringComparison.Ordinal)..];
        Assert.Contains("\r\nContent-Type: application/problem+json\r\n", refusal, StringComparison.Ordinal);
        var length = int.Parse(System.Text.RegularExpressions.Regex.Match(refusal, @"Content-Length: (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var body = refusal[(refusal.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        Assert.Equal(length, Encoding.UTF8.GetByteCount(body));
        Assert.Equal("bad-request", System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("type").GetString()!.Split(':')[^1]);
    }

    [Theory]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", true)]
    [InlineData("HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n{}", false)]
    [InlineData("HTTP/1.1 4\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false)]
    public void Only_kestrels_own_bodyless_refusals_are_rewritten(string written, bool rewritten) =>
        Assert.Equal(rewritten, Plugboard.Http.ServerRejections.Rewrite(Encoding.ASCII.GetBytes(written)) is not null);

    [Fact]
    public void Stored_json_has_no_nul_even_when_keys_collide_once_cleaned()
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse("{\"a\\u0000\": 1, \"a\\uFFFD\": 2, \"list\": [\"x\\u0000\"]}");
        var text = Plugboard.Data.Jsonb.Text(node);
        Assert.DoesNotContain("\\u0000", text, StringComparison.Ordinal);
        Assert.Equal("x\uFFFD", (string?)System.Text.Json.Nodes.JsonNode.Parse(text)!["list"]![0]);
    }

    [Fact]
    public async Task Every_endpoint_refuses_missing_malformed_unknown_and_revoked_keys_with_401()
    {
        var team = await server.TeamAsync();
        var created = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/api-keys", new { name = "soon revoked" })).AssertStatusAsync(201);
        var revokedKey = created.GetProperty("key").GetString()!;
        using var revokedClient = server.Client(revokedKey);
        await (await revokedClient.GetAsync($"/v1/workspaces/{team.Id}")).AssertStatusAsync(200);
        await (await team.Owner.Http.DeleteAsync($"/v1/workspaces/{team.Id}/api-keys/{created.GetProperty("id").GetString()}")).AssertStatusAsync(204);

        using var anonymous = server.Client(null);
        using var garbage = server.Client("not-a-key");
        using var unknown = server.Client("pb_abcdefgh_" + new string('x', 43));
        using var basic = server.Client(null);
        basic.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", "dXNlcjpwYXNz");
        var before = await RowCountsAsync();
        var failures = new List<string>();
        foreach (var route in ApiRoutes().Where(r => !r.Anonymous))
        {
            var path = Fill(route.Pattern, team.Id, Guid.NewGuid().ToString());
            foreach (var (name, client) in new[] { ("no auth", anonymous), ("garbage", garbage), ("unknown key", unknown), ("basic", basic), ("revoked key", revokedClient) })
            {
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), path) { Content = route.TakesBody ? HttpAssertions.RawJson("{}") : null };
                var response = await client.SendAsync(request);
                if ((int)response.StatusCode != 401 || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{route.Method} {route.Pattern} with {name}: {(int)response.StatusCode}");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(30)));
        Assert.Equal(before, await RowCountsAsync());
    }

    [Fact]
    public async Task Invalid_and_unknown_ids_answer_404_problems()
    {
        var team = await server.TeamAsync();
        var failures = new List<string>();
        foreach (var route in ApiRoutes())
        {
            var hasId = route.Pattern.Contains(":guid}", StringComparison.Ordinal);
            var inWorkspace = route.Pattern.Contains("{workspaceId}", StringComparison.Ordinal);
            if (!hasId && !inWorkspace)
            {
                continue;
            }
            var cases = new List<(string Workspace, string Id)> { ("ws_doesnotexist0000", Guid.NewGuid().ToString()), ("%27%20OR%201%3D1--", Guid.NewGuid().ToString()) };
            if (hasId)
            {
                cases.Add((team.Id, "not-a-guid"));
                cases.Add((team.Id, Guid.NewGuid().ToString()));
                cases.Add((team.Id, "00000000-0000-0000-0000-000000000000"));
            }
            // Platform routes are called by the platform owner, so the answer is about the id, not the role.
            var http = route.Pattern.StartsWith("/v1/admin", StringComparison.Ordinal) ? server.PlatformOwner.Http : team.Owner.Http;
            foreach (var (workspace, id) in cases)
            {
                var path = Fill(route.Pattern, workspace, id);
                using var request = new HttpRequestMessage(new HttpMethod(route.Method), path) { Content = route.TakesBody ? HttpAssertions.RawJson(ValidishBody(route.Pattern)) : null };
                var response = await http.SendAsync(request);
                var status = (int)response.StatusCode;
                if (status != 404 || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{route.Method} {path}: {status} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(30)));
    }

    private static string ValidishBody(string pattern) => pattern switch
    {
        _ when pattern.EndsWith("/members/{userId:guid}", StringComparison.Ordinal) => "{\"role\":\"viewer\"}",
        _ when pattern.EndsWith("/executions", StringComparison.Ordinal) => "{\"inputs\":{}}",
        _ when pattern.EndsWith("/sync", StringComparison.Ordinal) => "{\"full_refresh\":false}",
        _ when pattern.EndsWith("/test-runs", StringComparison.Ordinal) => "{\"manifest\":{}}",
        _ when pattern.EndsWith("/webhook/secret", StringComparison.Ordinal) || pattern.EndsWith("/webhook/events/replay", StringComparison.Ordinal) => "{}",
        _ when pattern.EndsWith("/install", StringComparison.Ordinal) => "{\"workspace_id\":\"ws_doesnotexist0000\"}",
        _ when pattern == "/v1/workspaces/{workspaceId}/api-keys" => "{\"name\":\"n\"}",
        _ when pattern.EndsWith("/reject", StringComparison.Ordinal) => "{\"reason\":\"no\"}",
        _ when pattern.EndsWith("/feature", StringComparison.Ordinal) => "{\"featured\":true}",
        _ when pattern.EndsWith("/members", StringComparison.Ordinal) => "{\"email\":\"a@b.test\",\"role\":\"viewer\"}",
        _ when pattern.EndsWith("/uploads/batches", StringComparison.Ordinal) => "{\"expected_files\":1}",
        _ when pattern.EndsWith("/credentials", StringComparison.Ordinal) => "{\"name\":\"n\",\"auth_type\":\"bearer\",\"secret\":{\"token\":\"t\"}}",
        _ when pattern.EndsWith("/templates", StringComparison.Ordinal) => "{\"slug\":\"s\",\"name\":\"n\",\"manifest\":{}}",
        _ => "{\"name\":\"n\"}",
    };
}
