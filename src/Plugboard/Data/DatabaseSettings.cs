using Npgsql;

namespace Plugboard.Data;

/// <summary>
/// The three connections Plugboard uses: the owner (migrations), the API role (row-level security applies)
/// and the service role (background work).
/// </summary>
public sealed record DatabaseSettings(string OwnerConnectionString, string ApiConnectionString, string ServiceConnectionString, string? RolePassword)
{
    public const string ApiRole = "plugboard_api";
    public const string ServiceRole = "plugboard_service";

    public static DatabaseSettings FromConfiguration(IConfiguration configuration)
    {
        var url = configuration["DATABASE_URL"];
        if (string.IsNullOrWhiteSpace(url))
        {
            throw new InvalidOperationException("DATABASE_URL is not set. Run `./run` to start the embedded PostgreSQL, or set DATABASE_URL to your server.");
        }
        var rolePassword = configuration["PLUGBOARD_DB_ROLE_PASSWORD"];
        var owner = ToConnectionString(url);
        var api = configuration["PLUGBOARD_API_DATABASE_URL"] is { Length: > 0 } apiUrl ? ToConnectionString(apiUrl) : WithRole(owner, ApiRole, rolePassword);
        var service = configuration["PLUGBOARD_WORKER_DATABASE_URL"] is { Length: > 0 } workerUrl ? ToConnectionString(workerUrl) : WithRole(owner, ServiceRole, rolePassword);
        return new DatabaseSettings(owner, api, service, rolePassword);
    }

    /// <summary>Accepts a postgres:// URL or an Npgsql keyword connection string.</summary>
    public static string ToConnectionString(string url)
    {
        if (!url.StartsWith("postgres://", StringComparison.Ordinal) && !url.StartsWith("postgresql://", StringComparison.Ordinal))
        {
            return new NpgsqlConnectionStringBuilder(url).ConnectionString;
        }
        var uri = new Uri(url);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')),
        };
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(parts[1]);
            }
        }
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            builder[key == "sslmode" ? "SSL Mode" : key] = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
        }
        return builder.ConnectionString;
    }

    public static string WithRole(string connectionString, string role, string? password)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Username = role, Password = password };
        return builder.ConnectionString;
    }
}
