using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Security;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Readiness that means something (schema, key ring, workers) and an API that answers 503 `unavailable` with
/// Retry-After while its database is away or restarting, each on a database of its own.
/// </summary>
public sealed class AvailabilityTests
{
    private static async Task<(WebApplication App, HttpClient Http)> StartAsync(DatabaseSettings settings, KeyRing keys, string home, HostMode mode = HostMode.All)
    {
        var app = PlugboardApp.Build([], new PlugboardHostOptions(home, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: mode), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword,
            ["PLUGBOARD_KEYS"] = keys.ToJson(),
        });
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new HttpClient { BaseAddress = new Uri(url) });
    }

    private static async Task<DatabaseSettings> MigratedDatabaseAsync(string prefix)
    {
        var settings = await PlugboardServer.CreateDatabaseAsync(prefix + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        Migrator.Up(settings);
        return settings;
    }

    [Fact]
    public async Task Readyz_checks_the_key_ring_against_the_canary_and_reports_live_workers()
    {
        var settings = await MigratedDatabaseAsync("pbready_");
        var home = Directory.CreateTempSubdirectory("plugboard-ready").FullName;
        var keys = KeyRing.Generate();
        var (app, http) = await StartAsync(settings, keys, home);
        await using (app)
        {
            var ready = await (await http.GetAsync("/readyz")).AssertStatusAsync(200);
            Assert.True(ready.GetProperty("key_ring").GetBoolean());
            Assert.Equal(JsonValueKind.Null, ready.GetProperty("reason").ValueKind);
            // The worker beats as it starts, which may be just after the host started.
            for (var deadline = DateTime.UtcNow.AddSeconds(20); ready.GetProperty("workers").GetProperty("live").GetInt32() == 0 && DateTime.UtcNow < deadline;)
            {
                await Task.Delay(100);
                ready = await (await http.GetAsync("/readyz")).AssertStatusAsync(200);
            }
            Assert.True(ready.GetProperty("workers").GetProperty("live").GetInt32() >= 1);

            // A second process whose ring does not hold the key the canary was written with is not ready, and says why.
            var (other, otherHttp) = await StartAsync(settings, KeyRing.Generate(), home, HostMode.Api);
            await using (other)
            {
                var response = await otherHttp.GetAsync("/readyz");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.NotNull(response.Headers.RetryAfter);
                var body = await response.ReadJsonAsync();
                Assert.False(body.GetProperty("key_ring").GetBoolean());
                Assert.Contains("cannot decrypt the canary", body.GetProperty("reason").GetString(), StringComparison.Ordinal);
            }

            // Operators see the workers' heartbeats; workspace users do not.
            await using var db = new Db(settings);
            var owner = await Bootstrap.EnsureOwnerAsync(db, home, "owner@ready.test", CancellationToken.None);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
            var workers = await (await http.GetAsync("/v1/admin/workers")).AssertStatusAsync(200);
            Assert.Contains(workers.EnumerateArray(), w => w.GetProperty("live").GetBoolean() && w.GetProperty("kinds").EnumerateArray().Any(k => k.GetString() == "execution"));
            var plain = await Bootstrap.CreateKeyAsync(db, "owner@ready.test", "capped", null, "viewer", CancellationToken.None);
            using var viewer = new HttpClient { BaseAddress = http.BaseAddress };
            viewer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", plain);
            await (await viewer.GetAsync("/v1/admin/workers")).AssertProblemAsync(403, "forbidden");

            // A schema behind the build is not ready either, and says which migration to run.
            await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
            {
                await connection.ExecuteAsync("""DELETE FROM "VersionInfo" WHERE "Version" = (SELECT max("Version") FROM "VersionInfo")""");
            }
            var behind = await http.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, behind.StatusCode);
            Assert.Contains("plugboard migrate up", (await behind.ReadJsonAsync()).GetProperty("reason").GetString(), StringComparison.Ordinal);
            await app.StopAsync();
        }
        // A worker that stops cleanly removes its heartbeat.
        await using var after = new NpgsqlConnection(settings.OwnerConnectionString);
        Assert.Equal(0, await after.ExecuteScalarAsync<long>("SELECT count(*) FROM worker_heartbeats"));
    }

    [Fact]
    public async Task A_database_restart_answers_503_unavailable_at_most_once_per_pool_then_recovers()
    {
        var settings = await MigratedDatabaseAsync("pbrestart_");
        var home = Directory.CreateTempSubdirectory("plugboard-restart").FullName;
        var keys = KeyRing.Generate();
        var (app, http) = await StartAsync(settings, keys, home, HostMode.Api);
        await using (app)
        {
            await using var db = new Db(settings);
            var owner = await Bootstrap.EnsureOwnerAsync(db, home, "owner@restart.test", CancellationToken.None);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
            // Fill the pool with several idle connections.
            await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ => await (await http.GetAsync("/v1/workspaces")).AssertStatusAsync(200)));
            // What a restart does to them: every backend of this database is terminated.
            await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(settings.OwnerConnectionString) { Database = "postgres" }.ConnectionString))
            {
                var killed = await connection.ExecuteScalarAsync<long>(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = @name AND pid <> pg_backend_pid()) t",
                    new { name = new NpgsqlConnectionStringBuilder(settings.OwnerConnectionString).Database });
                Assert.True(killed >= 2, $"only {killed} backends to terminate");
            }
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 12; i++)
            {
                var response = await http.GetAsync("/v1/workspaces");
                statuses.Add(response.StatusCode);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    var problem = await response.AssertProblemAsync(503, "unavailable");
                    Assert.NotNull(response.Headers.RetryAfter);
                    Assert.Contains("Retry-After", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
                }
            }
            Assert.True(statuses.Count(s => s != HttpStatusCode.OK) <= 1, string.Join(", ", statuses));
            Assert.Equal(HttpStatusCode.OK, statuses[^1]);
        }
    }

    [Fact]
    public async Task An_unreachable_database_answers_503_unavailable_and_readyz_says_why()
    {
        int port;
        using (var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        var nowhere = new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = port, Username = "postgres", Password = "x", Database = "none", Timeout = 3 }.ConnectionString;
        var settings = new DatabaseSettings(nowhere, DatabaseSettings.WithRole(nowhere, DatabaseSettings.ApiRole, "x"), DatabaseSettings.WithRole(nowhere, DatabaseSettings.ServiceRole, "x"), "x");
        var (app, http) = await StartAsync(settings, KeyRing.Generate(), Directory.CreateTempSubdirectory("plugboard-down").FullName, HostMode.Api);
        await using (app)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "pb_abcdefgh_" + new string('x', 43));
            var response = await http.GetAsync("/v1/workspaces");
            await response.AssertProblemAsync(503, "unavailable");
            Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);
            using var anonymous = new HttpClient { BaseAddress = http.BaseAddress };
            var ready = await anonymous.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var body = await ready.ReadJsonAsync();
            Assert.False(body.GetProperty("database").GetBoolean());
            Assert.Contains("does not answer", body.GetProperty("reason").GetString(), StringComparison.Ordinal);
            _ = await http.PostAsJsonAsync("/v1/workspaces", new { name = "x" }); // no hang, no crash
        }
    }

    /// <summary>An API-only host whose API role has one pooled connection, so every request reuses the connection the
    /// previous one ran on (prepared statements included); and the owner's authorized client.</summary>
    private static async Task<(WebApplication App, Db Db, HttpClient Http, string WorkspaceId)> StartOnOneApiConnectionAsync(string name)
    {
        var settings = await MigratedDatabaseAsync($"pb{name}_");
        settings = settings with { ApiConnectionString = new NpgsqlConnectionStringBuilder(settings.ApiConnectionString) { MaxPoolSize = 1 }.ConnectionString };
        var home = Directory.CreateTempSubdirectory($"plugboard-{name}").FullName;
        var app = PlugboardApp.Build([], new PlugboardHostOptions(home, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: HostMode.Api), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = settings.OwnerConnectionString,
            ["PLUGBOARD_API_DATABASE_URL"] = settings.ApiConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword,
            ["PLUGBOARD_KEYS"] = KeyRing.Generate().ToJson(),
            ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000000",
        });
        await app.StartAsync();
        var db = new Db(settings);
        var owner = await Bootstrap.EnsureOwnerAsync(db, home, $"owner@{name}.test", CancellationToken.None);
        var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
        return (app, db, http, owner.WorkspaceId!);
    }

    [Fact]
    public async Task Malformed_values_never_leave_a_pooled_connection_unusable()
    {
        var (app, db, http, workspaceId) = await StartOnOneApiConnectionAsync("pool");
        await using (app)
        await using (db)
        using (http)
        {
            var statuses = new List<string>();
            foreach (var bad in new[] { "/v1/templates?q=%00", "/v1/templates?tag=%00", "/v1/templates?category=%00", "/v1/workspaces/ws%01x/connectors" })
            {
                for (var position = 0; position < 3; position++)
                {
                    for (var i = 0; i < position; i++)
                    {
                        statuses.Add($"{(int)(await http.GetAsync("/v1/templates")).StatusCode}");
                    }
                    var response = await http.GetAsync(bad);
                    Assert.True((int)response.StatusCode is >= 400 and < 500, $"{bad}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                    for (var i = 0; i < 5; i++)
                    {
                        statuses.Add($"{(int)(await http.GetAsync("/v1/templates")).StatusCode}");
                        statuses.Add($"{(int)(await http.GetAsync($"/v1/workspaces/{workspaceId}/connectors")).StatusCode}");
                    }
                }
            }
            Assert.All(statuses, s => Assert.Equal("200", s));
        }
    }

    /// <summary>
    /// A long randomized load on one pooled API connection: valid requests interleaved with ones PostgreSQL refuses
    /// while running them (duplicate names, NUL characters in text and JSON, malformed values), so statements fail on
    /// the very round trip that auto-prepares them. Npgsql 10 leaves such a connection answering the next statement
    /// with "Received unexpected backend message DataRow" (npgsql#6391) unless the request that failed unprepares it:
    /// no request may answer 5xx, and each answers what its kind calls for.
    /// </summary>
    [Fact]
    public async Task A_randomized_load_with_failing_statements_never_corrupts_a_pooled_connection()
    {
        var (app, db, http, workspaceId) = await StartOnOneApiConnectionAsync("stress");
        await using (app)
        await using (db)
        using (http)
        {
            // Published templates, so the searches that follow a refused one return rows.
            await Plugboard.Features.Templates.OfficialTemplateLoader.LoadAsync(db, Path.Combine(PlugboardServer.RepoRoot, "templates"), CancellationToken.None);
            var ws = $"/v1/workspaces/{workspaceId}";
            var connector = await (await http.PostAsJsonAsync($"{ws}/connectors", new { name = "base", manifest = TestManifests.Minimal() })).AssertStatusAsync(201);
            var executions = $"{ws}/connectors/{connector.GetProperty("id").GetString()}/executions";
            var seed = Environment.TickCount;
            var random = new Random(seed);
            // Each kind: a request, and the statuses it may answer.
            var kinds = new (string Name, Func<int, HttpRequestMessage> Request, int[] Allowed)[]
            {
                ("search templates", _ => new(HttpMethod.Get, "/v1/templates" + random.Next(3) switch { 0 => "?q=api", 1 => "?q=zz", _ => "" }), [200]),
                ("NUL in a query", _ => new(HttpMethod.Get, "/v1/templates?" + random.Next(3) switch { 0 => "q", 1 => "tag", _ => "category" } + "=a%00b"), [400]),
                ("list connectors", _ => new(HttpMethod.Get, $"{ws}/connectors"), [200]),
                ("create connector", i => Json(HttpMethod.Post, $"{ws}/connectors", new { name = $"c{seed}-{i}", manifest = TestManifests.Minimal() }), [201]),
                ("duplicate name", _ => Json(HttpMethod.Post, $"{ws}/connectors", new { name = "base", manifest = TestManifests.Minimal() }), [409]),
                ("NUL in JSON config", i => Json(HttpMethod.Post, $"{ws}/connectors", new { name = $"n{seed}-{i}", manifest = TestManifests.Minimal(), config = new { note = "a\u0000b" } }), [400, 422]),
                ("run", _ => Json(HttpMethod.Post, executions, new { inputs = new { } }), [202]),
                ("NUL in inputs", _ => Json(HttpMethod.Post, executions, new { inputs = new { x = "a\u0000b" } }), [400, 422]),
                ("list executions", _ => new(HttpMethod.Get, executions + "?limit=5"), [200]),
                ("bad cursor", _ => new(HttpMethod.Get, executions + "?cursor=%00"), [400]),
            };
            var failures = new List<string>();
            for (var i = 0; i < 2500 && failures.Count < 10; i++)
            {
                var (name, request, allowed) = kinds[random.Next(kinds.Length)];
                using var message = request(i);
                using var response = await http.SendAsync(message);
                if (!allowed.Contains((int)response.StatusCode))
                {
                    failures.Add($"#{i} {name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
            Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
        }

        static HttpRequestMessage Json(HttpMethod method, string path, object body) => new(method, path) { Content = JsonContent.Create(body) };
    }

    [Fact]
    public async Task Open_event_streams_hold_no_pooled_connection()
    {
        var settings = await MigratedDatabaseAsync("pbsse_");
        settings = settings with { ApiConnectionString = new NpgsqlConnectionStringBuilder(settings.ApiConnectionString) { MaxPoolSize = 3, Timeout = 3 }.ConnectionString };
        var home = Directory.CreateTempSubdirectory("plugboard-sse").FullName;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/held", async () =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(60));
            return Microsoft.AspNetCore.Http.Results.Json(new { ok = true });
        }));
        var app = PlugboardApp.Build([], new PlugboardHostOptions(home, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = settings.OwnerConnectionString,
            ["PLUGBOARD_API_DATABASE_URL"] = settings.ApiConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword,
            ["PLUGBOARD_KEYS"] = KeyRing.Generate().ToJson(),
            ["PLUGBOARD_OUTBOUND_ALLOW"] = "127.0.0.1/32",
        });
        await app.StartAsync();
        await using (app)
        {
            await using var db = new Db(settings);
            var owner = await Bootstrap.EnsureOwnerAsync(db, home, "owner@sse.test", CancellationToken.None);
            var url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            HttpClient Client()
            {
                var client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
                return client;
            }
            using var http = Client();
            var connector = await (await http.PostAsJsonAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors", new
            {
                name = "held",
                manifest = new { version = 1, base_url = stub.Url, steps = new[] { new { id = "held", request = new { method = "GET", path = "/held" } } } },
            })).AssertStatusAsync(201);
            var started = await http.PostAsJsonAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors/{connector.GetProperty("id").GetString()}/executions", new { });
            await started.AssertStatusAsync(202);
            var streams = new List<(HttpClient Client, HttpResponseMessage Response)>();
            for (var i = 0; i < 3; i++) // as many streams as the pool has connections
            {
                var client = Client();
                streams.Add((client, await client.GetAsync(started.Headers.Location + "/stream", HttpCompletionOption.ResponseHeadersRead)));
                Assert.Equal(HttpStatusCode.OK, streams[^1].Response.StatusCode);
            }
            for (var i = 0; i < 5; i++)
            {
                await (await http.GetAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors")).AssertStatusAsync(200);
            }
            release.SetResult();
            foreach (var (client, response) in streams)
            {
                Assert.Contains("event: end", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                response.Dispose();
                client.Dispose();
            }
            await app.StopAsync();
        }
    }
}
