using System.Reflection;
using FluentMigrator;
using FluentMigrator.Runner;
using FluentMigrator.Runner.Initialization;
using Npgsql;

namespace Plugboard.Data;

/// <summary>A migration whose up and down are the embedded NNNN_name.up.sql / .down.sql scripts.</summary>
public abstract class SqlScriptMigration : Migration
{
    private string ScriptName
    {
        get
        {
            var attribute = GetType().GetCustomAttribute<MigrationAttribute>()!;
            return $"{attribute.Version:0000}_{attribute.Description}";
        }
    }

    public override void Up() => Execute.EmbeddedScript($"{ScriptName}.up.sql");

    public override void Down() => Execute.EmbeddedScript($"{ScriptName}.down.sql");
}

[Migration(1, "platform_core")]
public sealed class PlatformCoreMigration : SqlScriptMigration;

[Migration(2, "jobs")]
public sealed class JobsMigration : SqlScriptMigration;

[Migration(3, "executions")]
public sealed class ExecutionsMigration : SqlScriptMigration;

[Migration(4, "trust_hardening")]
public sealed class TrustHardeningMigration : SqlScriptMigration;

[Migration(5, "keyed_wakeups")]
public sealed class KeyedWakeupsMigration : SqlScriptMigration;

[Migration(6, "operability")]
public sealed class OperabilityMigration : SqlScriptMigration;

[Migration(7, "request_fast_path")]
public sealed class RequestFastPathMigration : SqlScriptMigration;

[Migration(8, "documents")]
public sealed class DocumentsMigration : SqlScriptMigration;

[Migration(9, "syncs")]
public sealed class SyncsMigration : SqlScriptMigration;

[Migration(10, "oauth")]
public sealed class OAuthMigration : SqlScriptMigration;

[Migration(11, "sync_files")]
public sealed class SyncFilesMigration : SqlScriptMigration;

[Migration(12, "retention")]
public sealed class RetentionMigration : SqlScriptMigration;

[Migration(13, "webhooks")]
public sealed class WebhooksMigration : SqlScriptMigration;

[Migration(14, "dashboard_sessions")]
public sealed class DashboardSessionsMigration : SqlScriptMigration;

[Migration(15, "test_runs")]
public sealed class TestRunsMigration : SqlScriptMigration;

[Migration(16, "oidc_dashboard_sessions")]
public sealed class OidcDashboardSessionsMigration : SqlScriptMigration;

[Migration(17, "two_phase_sweep")]
public sealed class TwoPhaseSweepMigration : SqlScriptMigration;

public sealed record MigrationStatus(long Version, string Name, bool Applied);

/// <summary>Applies, reverts and reports migrations through FluentMigrator on the owner connection.</summary>
public static class Migrator
{
    private static ServiceProvider Runner(string ownerConnectionString) =>
        new ServiceCollection()
            .AddFluentMigratorCore()
            .ConfigureRunner(rb => rb
                .AddPostgres()
                .WithGlobalConnectionString(ownerConnectionString)
                .ScanIn(typeof(Migrator).Assembly).For.Migrations().For.EmbeddedResources())
            .Configure<RunnerOptions>(o => o.TransactionPerSession = false)
            .AddLogging()
            .BuildServiceProvider(validateScopes: false);

    public static long LatestVersion => typeof(Migrator).Assembly.GetTypes()
        .Select(t => t.GetCustomAttribute<MigrationAttribute>()?.Version ?? 0).Max();

    public static void Up(DatabaseSettings settings, long? toVersion = null)
    {
        using (var provider = Runner(settings.OwnerConnectionString))
        {
            var runner = provider.GetRequiredService<IMigrationRunner>();
            if (toVersion is { } version)
            {
                runner.MigrateUp(version);
            }
            else
            {
                runner.MigrateUp();
            }
        }
        EnsureRolePasswords(settings);
    }

    public static void Down(DatabaseSettings settings, long toVersion)
    {
        using var provider = Runner(settings.OwnerConnectionString);
        provider.GetRequiredService<IMigrationRunner>().MigrateDown(toVersion);
    }

    public static IReadOnlyList<MigrationStatus> Status(DatabaseSettings settings)
    {
        using var provider = Runner(settings.OwnerConnectionString);
        var runner = provider.GetRequiredService<IMigrationRunner>();
        var versions = provider.GetRequiredService<FluentMigrator.Runner.IVersionLoader>();
        versions.LoadVersionInfo();
        return runner.MigrationLoader.LoadMigrations()
            .Select(m => new MigrationStatus(m.Key, m.Value.Description ?? "", versions.VersionInfo.HasAppliedMigration(m.Key)))
            .ToList();
    }

    /// <summary>The API and service roles log in with the configured role password (the embedded cluster generates one).</summary>
    private static void EnsureRolePasswords(DatabaseSettings settings)
    {
        if (string.IsNullOrEmpty(settings.RolePassword))
        {
            return;
        }
        var literal = "'" + settings.RolePassword.Replace("'", "''", StringComparison.Ordinal) + "'";
        // Role rows are cluster-wide: processes migrating other databases at the same moment can collide
        // ("tuple concurrently updated"), which a retry resolves.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var connection = new NpgsqlConnection(settings.OwnerConnectionString);
                connection.Open();
                using var command = connection.CreateCommand();
                command.CommandText = $"ALTER ROLE {DatabaseSettings.ApiRole} PASSWORD {literal}; ALTER ROLE {DatabaseSettings.ServiceRole} PASSWORD {literal};";
                command.ExecuteNonQuery();
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InternalError && attempt < 10)
            {
                Thread.Sleep(50 * attempt);
            }
        }
    }
}
