using System.Diagnostics;
using Npgsql;

namespace Plugboard.Tests.Infrastructure;

/// <summary>Runs the machine's pg_dump against a test database.</summary>
public static class PgDump
{
    public static async Task<string> RunAsync(string connectionString, params string[] options)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var start = new ProcessStartInfo(Binary("pg_dump")) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-h", builder.Host!, "-p", builder.Port.ToString(), "-U", builder.Username!, "-d", builder.Database! }.Concat(options))
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["PGPASSWORD"] = builder.Password;
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await process.StandardError.ReadToEndAsync());
        return output;
    }

    private static string Binary(string name) =>
        Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin", name)).Where(File.Exists).OrderDescending().First();
}
