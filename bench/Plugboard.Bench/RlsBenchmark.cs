using System.Diagnostics;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Features.Connectors;

namespace Plugboard.Bench;

/// <summary>
/// RLS cost: list one workspace's connectors (1,000 workspaces × 100 connectors) as plugboard_api, with the
/// request context set transaction-locally as the API sets it, against the same query run by a role that bypasses RLS
/// with an explicit WHERE workspace_id. Both alternate in one run, on random workspaces. It measures the database work
/// RLS adds (the context statement and the policy-filtered scan), each side in one round trip; the API's request
/// transaction adds its own round trips (authentication, COMMIT) whichever way tenancy is enforced.
/// </summary>
public static class RlsBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var workspaces = BenchTools.Arg(args, "--workspaces", 1000);
        var perWorkspace = BenchTools.Arg(args, "--connectors", 100);
        var iterations = BenchTools.Arg(args, "--iterations", 20000);
        var settings = await BenchDatabase.CreateAsync("rls");
        Migrator.Up(settings);

        Console.WriteLine($"seeding {workspaces} workspaces × {perWorkspace} connectors …");
        await using (var owner = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            await owner.OpenAsync();
            await owner.ExecuteAsync(
                """
                INSERT INTO workspaces (id, name) SELECT 'ws_bench' || lpad(w::text, 6, '0'), 'Bench ' || w FROM generate_series(1, @workspaces) w;
                INSERT INTO connectors (workspace_id, id, name, manifest, config)
                SELECT 'ws_bench' || lpad(w::text, 6, '0'), gen_random_uuid(), 'connector ' || c, '{"version": 1, "steps": []}', '{"base_url": "https://example.test"}'
                  FROM generate_series(1, @workspaces) w, generate_series(1, @perWorkspace) c;
                ANALYZE;
                """, new { workspaces, perWorkspace }, commandTimeout: 600);
        }

        var query = $"SELECT {ConnectorsApi.Columns} FROM connectors WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT 51";
        var bypassQuery = $"SELECT {ConnectorsApi.Columns} FROM connectors WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT 51";
        await using var api = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(settings.ApiConnectionString) { MaxAutoPrepare = 20 }.ConnectionString).Build();
        await using var bypass = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(settings.OwnerConnectionString) { MaxAutoPrepare = 20 }.ConnectionString).Build();
        await using var apiConnection = await api.OpenConnectionAsync();
        await using var bypassConnection = await bypass.OpenConnectionAsync();
        Assert(await bypassConnection.ExecuteScalarAsync<bool>("SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user"), "the baseline role must bypass RLS");

        var random = new Random(42);
        var rls = new List<double>(iterations);
        var direct = new List<double>(iterations);
        for (var i = 0; i < iterations + 1000; i++)
        {
            var ws = $"ws_bench{random.Next(1, workspaces + 1):000000}";
            var measure = i >= 1000; // the first thousand of each warm up caches and prepared statements
            var t1 = await TimeAsync(() => ListWithRlsAsync(apiConnection, query, ws, perWorkspace));
            var t2 = await TimeAsync(() => ListBypassingAsync(bypassConnection, bypassQuery, ws, perWorkspace));
            if (measure)
            {
                rls.Add(t1);
                direct.Add(t2);
            }
        }
        rls.Sort();
        direct.Sort();
        Console.WriteLine($"rls (plugboard_api, set_config context): p50 {BenchTools.Percentile(rls, 0.50):F3} ms  p99 {BenchTools.Percentile(rls, 0.99):F3} ms");
        Console.WriteLine($"bypass (owner, WHERE workspace_id):      p50 {BenchTools.Percentile(direct, 0.50):F3} ms  p99 {BenchTools.Percentile(direct, 0.99):F3} ms");
        Console.WriteLine($"iterations: {iterations} each, workspaces: {workspaces}, connectors per workspace: {perWorkspace}");
        Console.WriteLine($"ratio: {BenchTools.Percentile(rls, 0.99) / BenchTools.Percentile(direct, 0.99):F3}");
        return 0;
    }

    /// <summary>
    /// The request context set transaction-locally, then the list query, sent as one batch. A batch runs in one implicit
    /// transaction (one Sync), so the settings end with it — one round trip, as the bypassing baseline's single
    /// statement is.
    /// </summary>
    private static async Task ListWithRlsAsync(NpgsqlConnection connection, string query, string ws, int expected)
    {
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT set_config('app.workspace_id', $1, true), set_config('app.workspace_role', 'viewer', true), set_config('app.user_id', $2, true)")
                {
                    Parameters = { new() { Value = ws }, new() { Value = Guid.Empty.ToString() } },
                },
                new NpgsqlBatchCommand(query) { Parameters = { new() { Value = DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid } } },
            },
        };
        await using var reader = await batch.ExecuteReaderAsync();
        await reader.NextResultAsync(); // set_config → list
        var rows = 0;
        while (await reader.ReadAsync())
        {
            rows++;
        }
        Assert(rows == Math.Min(51, expected), $"RLS listed {rows} rows");
    }

    private static async Task ListBypassingAsync(NpgsqlConnection connection, string query, string ws, int expected)
    {
        await using var command = new NpgsqlCommand(query, connection)
        {
            Parameters = { new() { Value = ws }, new() { Value = DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid } },
        };
        await using var reader = await command.ExecuteReaderAsync();
        var rows = 0;
        while (await reader.ReadAsync())
        {
            rows++;
        }
        Assert(rows == Math.Min(51, expected), $"bypass listed {rows} rows");
    }

    private static async Task<double> TimeAsync(Func<Task> action)
    {
        var start = Stopwatch.GetTimestamp();
        await action();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }



    private static void Assert(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException(message);
        }
    }
}
