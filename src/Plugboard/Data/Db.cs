using Npgsql;

namespace Plugboard.Data;

/// <summary>Pooled data sources for the API role (RLS applies) and the service role (background work).</summary>
public sealed class Db : IAsyncDisposable
{
    public Db(DatabaseSettings settings)
    {
        Settings = settings;
        Api = Build(settings.ApiConnectionString, "plugboard-api");
        Service = Build(settings.ServiceConnectionString, "plugboard-service");
    }

    public DatabaseSettings Settings { get; }
    public NpgsqlDataSource Api { get; }
    public NpgsqlDataSource Service { get; }

    /// <summary>A connection of its own on the service role, not pooled, for what keeps session state (LISTEN, a
    /// session-level advisory lock): closing it ends the session and that state with it.</summary>
    public NpgsqlConnection CreateSessionConnection(string applicationName) =>
        new(new NpgsqlConnectionStringBuilder(Settings.ServiceConnectionString)
        {
            ApplicationName = applicationName,
            PersistSecurityInfo = false,
            IncludeErrorDetail = false,
            Pooling = false,
            KeepAlive = 30,
        }.ConnectionString);

    private static NpgsqlDataSource Build(string connectionString, string applicationName)
    {
        var builder = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(connectionString)
        {
            ApplicationName = applicationName,
            // Secrets in connection strings must never surface in exceptions or logs.
            PersistSecurityInfo = false,
            IncludeErrorDetail = false,
            // Hot statements (claims, request context, lookups) are prepared per connection after two uses, so
            // PostgreSQL stops re-planning them. Behind a transaction-pooling proxy set Max Auto Prepare=0 in the URL.
            MaxAutoPrepare = connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase)
                ? new NpgsqlConnectionStringBuilder(connectionString).MaxAutoPrepare
                : 100,
            AutoPrepareMinUsages = 2,
            // Returning a connection to the pool sends no reset (a parsed multi-statement round of CLOSE ALL, UNLISTEN …
            // on every open): Plugboard keeps no session state on pooled connections — request context is
            // set_config(…, true), advisory locks are transaction-scoped, LISTEN has its own unpooled connection.
            NoResetOnClose = true,
        }.ConnectionString);
        return builder.Build();
    }

    public async ValueTask DisposeAsync()
    {
        await Api.DisposeAsync();
        await Service.DisposeAsync();
    }
}
