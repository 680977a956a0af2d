using System.Security.Cryptography;
using Dapper;
using Npgsql;
using Plugboard.Data;

namespace Plugboard.Bench;

/// <summary>A fresh database on the cluster ./bench started (DATABASE_URL), dropped by nobody: the cluster is throw-away.</summary>
public static class BenchDatabase
{
    public static async Task<DatabaseSettings> CreateAsync(string name)
    {
        var url = Environment.GetEnvironmentVariable("DATABASE_URL") ?? throw new InvalidOperationException("Run benchmarks with ./bench, which starts PostgreSQL.");
        var owner = new NpgsqlConnectionStringBuilder(DatabaseSettings.ToConnectionString(url));
        var database = $"pbbench_{name}_{Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant()}";
        await using (var connection = new NpgsqlConnection(owner.ConnectionString))
        {
            await connection.ExecuteAsync($"CREATE DATABASE {database}");
        }
        owner.Database = database;
        var rolePassword = Environment.GetEnvironmentVariable("PLUGBOARD_DB_ROLE_PASSWORD");
        return new DatabaseSettings(owner.ConnectionString,
            DatabaseSettings.WithRole(owner.ConnectionString, DatabaseSettings.ApiRole, rolePassword),
            DatabaseSettings.WithRole(owner.ConnectionString, DatabaseSettings.ServiceRole, rolePassword), rolePassword);
    }
}
