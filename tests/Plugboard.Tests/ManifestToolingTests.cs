using System.Diagnostics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Plugboard.Hosting;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>The manifest tools: schema, API validation, `plugboard manifest validate` and `plugboard run` give the same answers.</summary>
[Collection(ServerCollection.Name)]
public sealed class ManifestToolingTests(PlugboardServer server)
{
    private const string BrokenYaml = """
        version: 1
        base_url: https://api.example.test
        steps:
          - id: first
            request:
              method: GET
              path: /a
          - id: second
            request:
              method: GET
              path: "/b/{{ steps.nowhere.id }}"
            extract:
              id: "$..[?(@.x"
        """;

    private static Task<(int Exit, string Output)> PlugboardAsync(params string[] args) => PlugboardAsync(new Dictionary<string, string>(), args);

    private static async Task<(int Exit, string Output)> PlugboardAsync(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugboard.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["NO_COLOR"] = "1";
        start.Environment["COLUMNS"] = "400";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output + await error);
    }

    [Fact]
    public async Task Api_and_cli_validation_name_the_same_places()
    {
        var user = await server.NewUserAsync();
        var answer = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = BrokenYaml })).AssertStatusAsync(200);
        Assert.False(answer.GetProperty("valid").GetBoolean());
        var issues = answer.GetProperty("issues").EnumerateArray().ToList();
        Assert.Contains(issues, i => i.GetProperty("pointer").GetString()!.StartsWith("/steps/1", StringComparison.Ordinal) && i.GetProperty("message").GetString()!.Contains("nowhere", StringComparison.Ordinal));
        Assert.All(issues, i => Assert.True(i.GetProperty("line").GetInt32() > 0));
        var file = Path.Combine(server.TestHome, "broken.yaml");
        await File.WriteAllTextAsync(file, BrokenYaml);
        var (exit, output) = await PlugboardAsync("manifest", "validate", file);
        Assert.Equal(1, exit);
        foreach (var issue in issues)
        {
            Assert.Contains($"{file}:{issue.GetProperty("line").GetInt32()}:", output, StringComparison.Ordinal);
            Assert.Contains(issue.GetProperty("pointer").GetString()!, output, StringComparison.Ordinal);
        }
        var good = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = TestManifests.Minimal() })).AssertStatusAsync(200);
        Assert.True(good.GetProperty("valid").GetBoolean());
        var (goodExit, _) = await PlugboardAsync("manifest", "validate", Path.Combine(PlugboardServer.RepoRoot, "templates", "oauth2-api.yaml"));
        Assert.Equal(0, goodExit);
        // The same template file through the API gives the same answer.
        foreach (var template in Directory.EnumerateFiles(Path.Combine(PlugboardServer.RepoRoot, "templates"), "*.yaml"))
        {
            var text = await File.ReadAllTextAsync(template);
            var viaApi = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = text })).AssertStatusAsync(200);
            Assert.True(viaApi.GetProperty("valid").GetBoolean(), $"{template}: {viaApi}");
            Assert.Equal(0, (await PlugboardAsync("manifest", "validate", template)).Exit);
        }
        await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = 42 })).AssertProblemAsync(422);
    }

    [Fact]
    public async Task Validation_gives_the_manifest_as_json_and_an_outline_of_steps_streams_and_what_each_step_reads()
    {
        var user = await server.NewUserAsync();
        // Broken elsewhere, the outline still follows the document: second reads first (and a step that does not exist).
        var broken = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = BrokenYaml.Replace("steps.nowhere.id", "steps.first.id }}/{{ steps.nowhere.id", StringComparison.Ordinal) })).AssertStatusAsync(200);
        Assert.False(broken.GetProperty("valid").GetBoolean());
        var steps = broken.GetProperty("outline").GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal(["first", "second"], steps.Select(s => s.GetProperty("id").GetString()));
        Assert.Equal("GET", steps[1].GetProperty("method").GetString());
        Assert.Empty(steps[0].GetProperty("uses").EnumerateArray());
        Assert.Equal(["first"], steps[1].GetProperty("uses").EnumerateArray().Select(u => u.GetString()));
        Assert.Equal("https://api.example.test", broken.GetProperty("manifest").GetProperty("base_url").GetString());

        // A template file: the manifest inside it, its stream drawn from the step that extracts the records.
        var template = await File.ReadAllTextAsync(Path.Combine(PlugboardServer.RepoRoot, "templates", "generic-rest-api-key.yaml"));
        var answer = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = template })).AssertStatusAsync(200);
        Assert.True(answer.GetProperty("valid").GetBoolean());
        Assert.Equal(1, answer.GetProperty("manifest").GetProperty("version").GetInt32());
        Assert.False(answer.GetProperty("manifest").TryGetProperty("slug", out _));
        var stream = Assert.Single(answer.GetProperty("outline").GetProperty("streams").EnumerateArray());
        Assert.Equal(("records", "list"), (stream.GetProperty("name").GetString(), stream.GetProperty("step").GetString()));
        Assert.True(answer.GetProperty("outline").GetProperty("steps")[0].GetProperty("paginated").GetBoolean());
        // What validation answers for the dashboard's starter manifest is what a new draft starts from: valid.
        var starter = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = Plugboard.Features.Dashboard.DashboardPages.StarterManifest })).AssertStatusAsync(200);
        Assert.True(starter.GetProperty("valid").GetBoolean(), starter.GetRawText());
    }

    [Fact]
    public async Task An_alias_bomb_is_refused_with_a_pointer_by_the_api_and_the_cli()
    {
        var bomb = Plugboard.Testing.HostileInput.AliasBomb();
        var user = await server.NewUserAsync();
        var problem = await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = bomb })).AssertProblemAsync(422);
        Assert.EndsWith(":manifest-refused", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Equal("/manifest/a0", problem.GetProperty("pointer").GetString());
        Assert.Equal(3, problem.GetProperty("line").GetInt32());
        var file = Path.Combine(server.TestHome, "bomb.yaml");
        await File.WriteAllTextAsync(file, bomb);
        var (exit, output) = await PlugboardAsync("manifest", "validate", file);
        Assert.Equal(1, exit);
        Assert.Contains($"{file}:3:", output, StringComparison.Ordinal);
        Assert.Contains("Anchors", output, StringComparison.Ordinal);
        // The server is still well and answers the next request.
        await (await user.Http.PostAsJsonAsync("/v1/manifests/validate", new { manifest = TestManifests.Minimal() })).AssertStatusAsync(200);
    }

    [Fact]
    public async Task The_json_schema_is_served_for_editors()
    {
        using var anonymous = server.Client(null);
        var schema = await (await anonymous.GetAsync("/v1/schemas/manifest.json")).AssertStatusAsync(200);
        Assert.True(schema.TryGetProperty("$schema", out _));
        Assert.True(schema.GetProperty("$defs").GetProperty("manifest").GetProperty("properties").TryGetProperty("steps", out _));
        // The very schema the validator checks structure with.
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(schema.GetRawText()),
            System.Text.Json.Nodes.JsonNode.Parse(Plugboard.Engine.Manifests.ManifestSchema.Json)));
    }

    [Fact]
    public async Task Plugboard_run_executes_a_template_locally_with_redacted_progress()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/records", (HttpRequest r, int offset) =>
            r.Headers["X-API-Key"] == server.Canary
                ? Results.Json(new { data = offset == 0 ? new[] { new { id = 1, echo = r.Headers["X-API-Key"].ToString() } } : [] })
                : Results.StatusCode(401)));
        var credentials = Path.Combine(server.TestHome, "run-credentials.json");
        await File.WriteAllTextAsync(credentials, $$"""{"api_key": "{{server.Canary}}"}""");
        var (exit, output) = await PlugboardAsync("run", Path.Combine(PlugboardServer.RepoRoot, "templates", "generic-rest-api-key.yaml"),
            "--config", $"base_url={stub.Url}", "--credentials", credentials, "--allow", "127.0.0.1/32");
        Assert.True(exit == 0, output);
        Assert.Contains("succeeded", output, StringComparison.Ordinal);
        Assert.Contains("\"id\": 1", output, StringComparison.Ordinal);
        Assert.Contains("/records", output, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Canary, output.Replace("\"echo\": \"***\"", "", StringComparison.Ordinal), StringComparison.Ordinal);
        // Without the allowance the SSRF guard refuses the loopback stub.
        var (blockedExit, blockedOutput) = await PlugboardAsync("run", Path.Combine(PlugboardServer.RepoRoot, "templates", "generic-rest-api-key.yaml"),
            "--config", $"base_url={stub.Url}", "--credentials", credentials);
        Assert.Equal(1, blockedExit);
        Assert.Contains("PLUGBOARD_OUTBOUND_ALLOW", blockedOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("PLUGBOARD_WORKER_CONCURRENCY", "abc")]
    [InlineData("PLUGBOARD_WORKER_CONCURRENCY", "0")]
    [InlineData("PLUGBOARD_WORKER_POLL_SECONDS", "soon")]
    [InlineData("PLUGBOARD_STEP_TIMEOUT_SECONDS", "30s")]
    [InlineData("PLUGBOARD_WORKSPACE_RATE_LIMIT", "-1")]
    [InlineData("PLUGBOARD_LOG_LEVEL", "loud")]
    [InlineData("PLUGBOARD_RUN_WORKERS", "maybe")]
    [InlineData("PLUGBOARD_OUTBOUND_ALLOW", "localhost")]
    [InlineData("PLUGBOARD_UPLOAD_MAX_MB", "lots")]
    [InlineData("PLUGBOARD_UPLOAD_ALLOWED_TYPES", "application/x-executable")]
    [InlineData("PLUGBOARD_CHUNK_TOKENS", "8")]
    [InlineData("PLUGBOARD_SEARCH_CONFIG", "English; DROP")]
    [InlineData("PLUGBOARD_S3_ENDPOINT", "ftp://bucket")]
    [InlineData("PLUGBOARD_SCHEDULER_POLL_SECONDS", "often")]
    [InlineData("PLUGBOARD_SYNC_MAX_FAILURES", "0")]
    [InlineData("PLUGBOARD_SESSION_HOURS", "a day")]
    [InlineData("PLUGBOARD_UPLOAD_ORPHAN_HOURS", "-1")]
    public async Task An_unusable_setting_stops_the_process_before_it_starts_naming_the_variable(string name, string value)
    {
        var home = Path.Combine(server.TestHome, "bad-setting-" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var verb in new[] { "worker", "up" })
        {
            var (exit, output) = await PlugboardAsync(new Dictionary<string, string> { [name] = value, ["PLUGBOARD_HOME"] = home }, verb);
            Assert.Equal(2, exit);
            Assert.Contains($"plugboard: {name} must ", output, StringComparison.Ordinal);
            Assert.Contains($"'{value}'", output, StringComparison.Ordinal);
        }
        Assert.False(Directory.Exists(Path.Combine(home, "pgdata")));
    }

    [Fact]
    public async Task A_search_configuration_the_database_lacks_stops_the_process()
    {
        var (exit, output) = await PlugboardAsync(new Dictionary<string, string>
        {
            ["PLUGBOARD_HOME"] = Path.Combine(server.TestHome, "no-config-" + Guid.NewGuid().ToString("N")[..8]),
            ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword ?? "",
            ["PLUGBOARD_KEYS"] = server.Keys.ToJson(),
            ["PLUGBOARD_SEARCH_CONFIG"] = "klingon",
        }, "serve");
        Assert.Equal(2, exit);
        Assert.Contains("plugboard: PLUGBOARD_SEARCH_CONFIG must name a text search configuration of the database; 'klingon' is not one", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_key_ring_stops_the_process_with_what_to_do_not_a_stack_trace()
    {
        var home = Path.Combine(server.TestHome, "no-keys-" + Guid.NewGuid().ToString("N")[..8]);
        var (exit, output) = await PlugboardAsync(new Dictionary<string, string>
        {
            ["PLUGBOARD_HOME"] = home,
            ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword ?? "",
        }, "serve");
        Assert.Equal(2, exit);
        Assert.Contains("plugboard: No key ring: set PLUGBOARD_KEYS or PLUGBOARD_KEYS_FILE, or create", output, StringComparison.Ordinal);
        Assert.Contains("`plugboard keys rotate`", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_proxy_in_the_environment_does_not_bypass_the_ssrf_guard()
    {
        // The "proxy" is allowed loopback; the target is a private address. Were the environment's proxy used, the
        // connect-time check would see only the proxy, and the request would reach it.
        await using var proxy = await Stub.StartAsync(app => app.MapGet("/{**rest}", () => Results.Json(new { data = new[] { new { id = 1 } } })));
        var credentials = Path.Combine(server.TestHome, "proxy-credentials.json");
        await File.WriteAllTextAsync(credentials, """{"api_key": "k"}""");
        var environment = new Dictionary<string, string> { ["HTTP_PROXY"] = proxy.Url, ["HTTPS_PROXY"] = proxy.Url, ["ALL_PROXY"] = proxy.Url, ["http_proxy"] = proxy.Url };
        var (exit, output) = await PlugboardAsync(environment, "run", Path.Combine(PlugboardServer.RepoRoot, "templates", "generic-rest-api-key.yaml"),
            "--config", "base_url=http://10.20.30.40", "--credentials", credentials, "--allow", "127.0.0.1/32");
        Assert.Equal(1, exit);
        var text = System.Text.RegularExpressions.Regex.Replace(output, @"\s+", " "); // the console wraps long lines
        Assert.Contains("'10.20.30.40'", text, StringComparison.Ordinal);
        Assert.Contains("destination address is not allowed", text, StringComparison.Ordinal);
        Assert.Empty(proxy.Requests);
    }

    [Fact]
    public async Task A_busy_workspace_is_rate_limited_with_429_and_retry_after()
    {
        var app = PlugboardApp.Build([], new PlugboardHostOptions(server.TestHome, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: HostMode.Api), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword,
            ["PLUGBOARD_KEYS"] = server.Keys.ToJson(),
            ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1",
            ["PLUGBOARD_WORKSPACE_RATE_BURST"] = "2",
        });
        await app.StartAsync();
        await using var dispose = app;
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var busy = await server.TeamAsync();
        var quiet = await server.TeamAsync();
        async Task<string> ConnectorAsync(TeamWorkspace t) => (await (await t.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/connectors",
            new { name = "rl", manifest = TestManifests.Minimal("http://127.0.0.1:9"), is_active = true })).AssertStatusAsync(201)).GetProperty("id").GetString()!;
        var busyConnector = await ConnectorAsync(busy);
        var quietConnector = await ConnectorAsync(quiet);
        using var busyHttp = new HttpClient { BaseAddress = new Uri(url) };
        busyHttp.DefaultRequestHeaders.Authorization = new("Bearer", busy.Member.Key);
        using var quietHttp = new HttpClient { BaseAddress = new Uri(url) };
        quietHttp.DefaultRequestHeaders.Authorization = new("Bearer", quiet.Member.Key);
        // Neither a non-member nor a member who may not run spends the workspace's budget.
        for (var i = 0; i < 6; i++)
        {
            await (await quietHttp.PostAsJsonAsync($"/v1/workspaces/{busy.Id}/connectors/{busyConnector}/executions", new { })).AssertProblemAsync(404, "not-found");
        }
        using var viewerHttp = new HttpClient { BaseAddress = new Uri(url) };
        viewerHttp.DefaultRequestHeaders.Authorization = new("Bearer", busy.Viewer.Key);
        for (var i = 0; i < 3; i++)
        {
            await (await viewerHttp.PostAsJsonAsync($"/v1/workspaces/{busy.Id}/connectors/{busyConnector}/executions", new { })).AssertProblemAsync(403, "forbidden");
        }
        var statuses = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            statuses.Add((int)(await busyHttp.PostAsJsonAsync($"/v1/workspaces/{busy.Id}/connectors/{busyConnector}/executions", new { })).StatusCode);
        }
        Assert.Equal([202, 202], statuses.Take(2));
        var limited = await busyHttp.PostAsJsonAsync($"/v1/workspaces/{busy.Id}/connectors/{busyConnector}/executions", new { });
        await limited.AssertProblemAsync(429, "too-many-requests");
        Assert.NotNull(limited.Headers.RetryAfter);
        // Another workspace is not affected.
        await (await quietHttp.PostAsJsonAsync($"/v1/workspaces/{quiet.Id}/connectors/{quietConnector}/executions", new { })).AssertStatusAsync(202);
    }
}
