using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Migrations are the schema: all of them up equals the checked-in schema.sql; down to zero on a database holding
/// data, then up again, gives back the same schema.
/// </summary>
public sealed partial class MigrationTests
{
    private static string SchemaFile => Path.Combine(PlugboardServer.RepoRoot, "src", "Plugboard", "Data", "schema.sql");

    [Fact]
    public async Task Up_down_to_zero_and_up_again_round_trips_on_a_database_with_data()
    {
        var settings = await PlugboardServer.CreateDatabaseAsync("pbmig_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        Migrator.Up(settings);
        var first = await DumpSchemaAsync(settings);

        if (Environment.GetEnvironmentVariable("PLUGBOARD_UPDATE_SCHEMA") == "1")
        {
            await File.WriteAllTextAsync(SchemaFile, first);
        }
        Assert.True(File.Exists(SchemaFile), "src/Plugboard/Data/schema.sql is missing: run ./test with PLUGBOARD_UPDATE_SCHEMA=1 and review the diff.");
        var checkedIn = await File.ReadAllTextAsync(SchemaFile);
        Assert.True(checkedIn == first, "The migrated schema differs from src/Plugboard/Data/schema.sql. If the migration is intended, run ./test with PLUGBOARD_UPDATE_SCHEMA=1 and review the diff.\n" + FirstDifference(checkedIn, first));

        await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            var userId = Guid.CreateVersion7();
            await connection.ExecuteAsync("INSERT INTO users (id, email) VALUES (@userId, 'mig@example.test'); INSERT INTO workspaces (id, name) VALUES ('ws_migration', 'M')", new { userId });
            await connection.ExecuteAsync("INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('ws_migration', @userId, 'owner')", new { userId });
            await connection.ExecuteAsync(
                """
                INSERT INTO workspace_api_credentials (workspace_id, id, name, auth_type, encrypted_payload, key_id, masked_hint) VALUES ('ws_migration', gen_random_uuid(), 'c', 'bearer', 'pb1:k:x', 'k', '••••');
                INSERT INTO connectors (workspace_id, id, name) VALUES ('ws_migration', gen_random_uuid(), 'c');
                INSERT INTO file_upload_batches (workspace_id, id, total_files) VALUES ('ws_migration', gen_random_uuid(), 3);
                """);
        }

        Migrator.Down(settings, 0);
        await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            var left = (await connection.QueryAsync<string>(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'S') AND relname <> 'VersionInfo'")).ToList();
            Assert.Empty(left);
            var functions = (await connection.QueryAsync<string>("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")).ToList();
            Assert.Empty(functions);
        }

        Migrator.Up(settings);
        Assert.Equal(first, await DumpSchemaAsync(settings));
        Assert.All(Migrator.Status(settings), m => Assert.True(m.Applied));
    }

    [Fact]
    public async Task Batch_counters_are_atomic_and_complete_the_batch()
    {
        var settings = await PlugboardServer.CreateDatabaseAsync("pbbatch_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        Migrator.Up(settings);
        var batchId = Guid.CreateVersion7();
        await using (var connection = new NpgsqlConnection(settings.ServiceConnectionString))
        {
            await connection.ExecuteAsync("INSERT INTO workspaces (id, name) VALUES ('ws_batch', 'B'); INSERT INTO file_upload_batches (workspace_id, id, total_files) VALUES ('ws_batch', @batchId, 40)", new { batchId });
        }
        // 30 successes and 10 failures from 8 concurrent connections.
        await Parallel.ForEachAsync(Enumerable.Range(0, 40), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            await using var connection = new NpgsqlConnection(settings.ServiceConnectionString);
            await connection.ExecuteAsync(i % 4 == 0 ? "SELECT increment_batch_failed(@batchId)" : "SELECT increment_batch_processed(@batchId)", new { batchId });
        });
        await using var check = new NpgsqlConnection(settings.ServiceConnectionString);
        var batch = await check.QuerySingleAsync<(int Processed, int Failed, string Status, DateTime? CompletedAt)>(
            "SELECT processed_files, failed_files, status, completed_at FROM file_upload_batches WHERE id = @batchId", new { batchId });
        Assert.Equal(30, batch.Processed);
        Assert.Equal(10, batch.Failed);
        Assert.Equal("completed_with_errors", batch.Status);
        Assert.NotNull(batch.CompletedAt);
    }

    public static async Task<string> DumpSchemaAsync(DatabaseSettings settings)
    {
        var output = await PgDump.RunAsync(settings.OwnerConnectionString, "--schema-only", "--no-owner", "--exclude-table=VersionInfo");
        var lines = output.Split('\n')
            .Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith("SET ", StringComparison.Ordinal)
                        && !l.StartsWith("SELECT pg_catalog.set_config", StringComparison.Ordinal) && !l.StartsWith("\\restrict", StringComparison.Ordinal)
                        && !l.StartsWith("\\unrestrict", StringComparison.Ordinal));
        return BlankRuns().Replace(string.Join('\n', lines).Trim() + "\n", "\n\n");
    }

    private static string FirstDifference(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (var i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            var left = i < e.Length ? e[i] : "<end>";
            var right = i < a.Length ? a[i] : "<end>";
            if (left != right)
            {
                return $"line {i + 1}: schema.sql has '{left}', migrations give '{right}'";
            }
        }
        return "";
    }

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex BlankRuns();
}
