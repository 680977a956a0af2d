using System.Diagnostics;
using System.Net;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Bench;

/// <summary>
/// The dashboard's server time against the JSON API's for the same data: a workspace with 1,000 connectors and 100,000
/// executions (each with a three-step log), signed in with a dashboard session that authenticates both. Alternating
/// rounds from 4 clients fetch the connectors list and random execution pages, as HTML (/w/…) and as JSON (/v1/…),
/// timing each to its response headers (time to first byte). Prints p50/p99 of all four, then
/// <c>ratio: the larger of (page p99 / API p99)</c> over the two pairs.
/// </summary>
public static class DashboardBenchmark
{
    private const string Workspace = "ws_dashboard";

    public static async Task<int> RunAsync(string[] args)
    {
        var connectors = BenchTools.Arg(args, "--connectors", 1000);
        var executions = BenchTools.Arg(args, "--executions", 100_000);
        var requests = BenchTools.Arg(args, "--requests", 2000);
        var rounds = BenchTools.Arg(args, "--rounds", 3);
        var concurrency = BenchTools.Arg(args, "--clients", 4);
        var settings = await BenchDatabase.CreateAsync("dashboard");
        Migrator.Up(settings);
        await using var db = new Db(settings);
        var home = Directory.CreateTempSubdirectory("plugboard-bench-dashboard");
        var owner = await Bootstrap.EnsureOwnerAsync(db, home.FullName, "owner@dashboard.bench", CancellationToken.None);

        var load = Stopwatch.StartNew();
        Console.WriteLine($"loading {connectors:N0} connectors and {executions:N0} executions …");
        await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            await connection.OpenAsync();
            await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO workspaces (id, name) VALUES (@ws, 'Dashboard bench');
                INSERT INTO workspace_members (workspace_id, user_id, role) SELECT @ws, id, 'owner' FROM users WHERE email = 'owner@dashboard.bench';
                INSERT INTO connectors (workspace_id, id, name, description, manifest, config)
                SELECT @ws, gen_random_uuid(), 'Connector ' || n, 'Bench connector number ' || n,
                       '{"version":1,"base_url":"http://127.0.0.1:9","steps":[{"id":"get","request":{"method":"GET","path":"/items"}}]}'::jsonb,
                       jsonb_build_object('region', 'eu', 'n', n)
                  FROM generate_series(1, @connectors) n;
                INSERT INTO connector_executions (workspace_id, id, connector_id, status, trigger, inputs, output, steps_log,
                                                  started_at, finished_at, duration_ms, attempts, created_at)
                SELECT @ws, gen_random_uuid(), c.id, CASE WHEN e % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 'api', '{"page": 1}'::jsonb,
                       jsonb_build_object('items', jsonb_build_array(jsonb_build_object('id', e, 'title', 'Item ' || e))),
                       jsonb_build_array(
                           jsonb_build_object('step_id', 'list', 'method', 'GET', 'url', 'http://127.0.0.1:9/items?page=1', 'status', 200, 'duration_ms', 40, 'bytes', 900, 'attempt', 1, 'response_body', repeat('{"id": 1, "title": "x"} ', 20)),
                           jsonb_build_object('step_id', 'list', 'method', 'GET', 'url', 'http://127.0.0.1:9/items?page=2', 'status', 200, 'duration_ms', 35, 'bytes', 900, 'attempt', 1, 'response_body', repeat('{"id": 2, "title": "y"} ', 20)),
                           jsonb_build_object('step_id', 'detail', 'method', 'GET', 'url', 'http://127.0.0.1:9/items/1', 'status', 200, 'duration_ms', 12, 'bytes', 300, 'attempt', 1, 'response_body', '{"id": 1}')),
                       now() - make_interval(secs => e), now() - make_interval(secs => e) + interval '87 ms', 87, 1, now() - make_interval(secs => e)
                  FROM (SELECT id, row_number() OVER (ORDER BY id) AS k FROM connectors WHERE workspace_id = @ws) c
                  JOIN generate_series(1, @executions) e ON e % @connectors = c.k - 1;
                ANALYZE connectors;
                ANALYZE connector_executions;
                """, new { ws = Workspace, connectors, executions }, commandTimeout: 3600));
        }
        var runs = new List<(Guid Connector, Guid Execution)>();
        await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            runs.AddRange(await connection.QueryAsync<(Guid, Guid)>("SELECT connector_id, id FROM connector_executions WHERE workspace_id = @ws", new { ws = Workspace }));
        }
        Console.WriteLine($"loaded {runs.Count:N0} executions in {load.Elapsed.TotalSeconds:F0} s");

        var app = BenchHost.Build(settings, home.FullName, HostMode.Api, new Dictionary<string, string?> { ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000000" });
        await app.StartAsync();
        var url = BenchHost.Address(app);
        var cookies = new CookieContainer();
        using var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, AllowAutoRedirect = false, MaxConnectionsPerServer = concurrency * 2 }) { BaseAddress = url };
        using (var signIn = await http.PostAsync("/sign-in", new FormUrlEncodedContent(new Dictionary<string, string> { ["api_key"] = owner.ApiKey! })))
        {
            if (signIn.StatusCode != HttpStatusCode.Found || cookies.GetCookies(url)["pb_session"] is null)
            {
                throw new InvalidOperationException($"Signing in to the dashboard answered {signIn.StatusCode}.");
            }
        }

        async Task<double> TimeToFirstByte(string path)
        {
            var watch = Stopwatch.StartNew();
            using var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            var ms = watch.Elapsed.TotalMilliseconds;
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"{path} answered {response.StatusCode}.");
            }
            await response.Content.CopyToAsync(Stream.Null);
            return ms;
        }

        var random = new Random(11);
        var listPage = $"/w/{Workspace}/connectors";
        var listApi = $"/v1/workspaces/{Workspace}/connectors";
        List<(Guid Connector, Guid Execution)> Sample(int n) => Enumerable.Range(0, n).Select(_ => runs[random.Next(runs.Count)]).ToList();
        string RunPage((Guid Connector, Guid Execution) r) => $"/w/{Workspace}/connectors/{r.Connector}/runs/{r.Execution}";
        string RunApi((Guid Connector, Guid Execution) r) => $"/v1/workspaces/{Workspace}/connectors/{r.Connector}/executions/{r.Execution}";

        Console.WriteLine($"warm-up, then {rounds} alternating rounds of {requests} requests per kind from {concurrency} clients …");
        // Long enough for the tiered JIT to finish with both paths (the page runs more code than the API).
        var warm = Sample(3000);
        await BenchTools.MeasureAsync(warm, concurrency, r => TimeToFirstByte(RunPage(r)));
        await BenchTools.MeasureAsync(warm, concurrency, r => TimeToFirstByte(RunApi(r)));
        await BenchTools.MeasureAsync(Enumerable.Repeat(listPage, 1000).ToList(), concurrency, TimeToFirstByte);
        await BenchTools.MeasureAsync(Enumerable.Repeat(listApi, 1000).ToList(), concurrency, TimeToFirstByte);

        var samples = new Dictionary<string, List<double>> { ["list_page"] = [], ["list_api"] = [], ["run_page"] = [], ["run_api"] = [] };
        for (var round = 0; round < rounds; round++)
        {
            samples["list_page"].AddRange(await BenchTools.MeasureAsync(Enumerable.Repeat(listPage, requests).ToList(), concurrency, TimeToFirstByte));
            samples["list_api"].AddRange(await BenchTools.MeasureAsync(Enumerable.Repeat(listApi, requests).ToList(), concurrency, TimeToFirstByte));
            var sample = Sample(requests);
            samples["run_page"].AddRange(await BenchTools.MeasureAsync(sample, concurrency, r => TimeToFirstByte(RunPage(r))));
            samples["run_api"].AddRange(await BenchTools.MeasureAsync(sample, concurrency, r => TimeToFirstByte(RunApi(r))));
        }
        await app.StopAsync();
        await app.DisposeAsync();
        home.Delete(recursive: true);

        foreach (var (name, times) in samples)
        {
            times.Sort();
            Console.WriteLine($"{name,-10} p50_ms: {BenchTools.Percentile(times, 0.5):F2}  p99_ms: {BenchTools.Percentile(times, 0.99):F2}  ({times.Count} requests)");
        }
        var listRatio = BenchTools.Percentile(samples["list_page"], 0.99) / BenchTools.Percentile(samples["list_api"], 0.99);
        var runRatio = BenchTools.Percentile(samples["run_page"], 0.99) / BenchTools.Percentile(samples["run_api"], 0.99);
        Console.WriteLine($"connectors list page/api p99: {listRatio:F3}");
        Console.WriteLine($"execution page/api p99: {runRatio:F3}");
        Console.WriteLine($"ratio: {Math.Max(listRatio, runRatio):F3}");
        return 0;
    }
}
