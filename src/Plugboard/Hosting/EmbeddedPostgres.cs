using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;

namespace Plugboard.Hosting;

/// <summary>
/// The private PostgreSQL cluster `./run` and `./test` use when DATABASE_URL is unset: created under
/// &lt;home&gt;/pgdata from the machine's PostgreSQL binaries, listening on 127.0.0.1 only, with generated passwords
/// kept in &lt;home&gt;/database.json (mode 0600). As root it runs as the `postgres` system user, since initdb refuses root.
/// </summary>
public sealed class EmbeddedPostgres(string home)
{
    private sealed record State(int Port, string SuperuserPassword, string RolePassword);

    private string DataDir => Path.Combine(home, "pgdata");
    private string StatePath => Path.Combine(home, "database.json");
    private string LogPath => Path.Combine(home, "run", "postgres.log");
    private static bool IsRoot => Environment.UserName == "root";

    public string DatabaseUrl { get; private set; } = "";
    public string RolePassword { get; private set; } = "";

    /// <summary>Whether this process started the cluster (it was not running already): only then does it stop it.</summary>
    public bool StartedHere { get; private set; }

    public async Task StartAsync(Action<string> report, CancellationToken ct)
    {
        Directory.CreateDirectory(home);
        var bin = FindBinaries();
        var state = File.Exists(StatePath) ? JsonSerializer.Deserialize<State>(await File.ReadAllTextAsync(StatePath, ct))! : null;
        if (state is null || !File.Exists(Path.Combine(DataDir, "PG_VERSION")))
        {
            report($"Creating a PostgreSQL cluster in {DataDir} …");
            state = new State(FreePort(), Secret(), Secret());
            await InitAsync(bin, state, ct);
            WritePrivate(StatePath, JsonSerializer.Serialize(state));
        }
        if (!await IsRunningAsync(bin, ct))
        {
            var port = IsPortFree(state.Port) ? state.Port : FreePort();
            if (port != state.Port)
            {
                state = state with { Port = port };
                WritePrivate(StatePath, JsonSerializer.Serialize(state));
            }
            report($"Starting PostgreSQL on 127.0.0.1:{state.Port} …");
            await RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", DataDir, "-l", LogPath, "-w", "-t", "60", "-o", $"-p {state.Port}", "start"], ct);
            StartedHere = true;
        }
        var admin = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = state.Port,
            Username = "postgres",
            Password = state.SuperuserPassword,
            Database = "postgres",
        };
        // Unpooled: a pooled connection from before a restart of the cluster would be dead.
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(admin.ConnectionString) { Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(ct);
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = 'plugboard'", connection);
            if (await exists.ExecuteScalarAsync(ct) is null)
            {
                await using var create = new NpgsqlCommand("CREATE DATABASE plugboard", connection);
                await create.ExecuteNonQueryAsync(ct);
            }
        }
        admin.Database = "plugboard";
        DatabaseUrl = admin.ConnectionString;
        RolePassword = state.RolePassword;
    }

    public async Task StopAsync(CancellationToken ct)
    {
        if (File.Exists(Path.Combine(DataDir, "postmaster.pid")))
        {
            await RunAsync(Path.Combine(FindBinaries(), "pg_ctl"), ["-D", DataDir, "-m", "fast", "-w", "stop"], ct);
        }
    }

    private async Task InitAsync(string bin, State state, CancellationToken ct)
    {
        if (Directory.Exists(DataDir))
        {
            Directory.Delete(DataDir, recursive: true);
        }
        Directory.CreateDirectory(DataDir);
        var socketDir = Path.Combine(home, "run");
        Directory.CreateDirectory(socketDir);
        var passwordFile = Path.Combine(home, ".pwfile");
        WritePrivate(passwordFile, state.SuperuserPassword);
        if (IsRoot)
        {
            await RunRawAsync("chown", ["postgres", DataDir, socketDir, passwordFile], ct);
        }
        try
        {
            await RunAsync(Path.Combine(bin, "initdb"), ["-D", DataDir, "-U", "postgres", "--pwfile", passwordFile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8"], ct);
        }
        finally
        {
            File.Delete(passwordFile);
        }
        await File.AppendAllTextAsync(Path.Combine(DataDir, "postgresql.conf"),
            $"""

            # Plugboard embedded cluster
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{socketDir}'
            max_connections = 200
            shared_buffers = 256MB
            fsync = on
            """, ct);
    }

    private async Task<bool> IsRunningAsync(string bin, CancellationToken ct)
    {
        try
        {
            await RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", DataDir, "status"], ct);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string FindBinaries()
    {
        if (Environment.GetEnvironmentVariable("PLUGBOARD_PG_BIN") is { Length: > 0 } configured)
        {
            return configured;
        }
        var candidates = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).ToList()
            : [];
        return candidates.FirstOrDefault()
            ?? throw new InvalidOperationException("No PostgreSQL binaries found: install PostgreSQL 15+ (apt-get install postgresql) or set PLUGBOARD_PG_BIN, or set DATABASE_URL to an existing server.");
    }

    private static Task RunAsync(string program, string[] args, CancellationToken ct) =>
        IsRoot ? RunRawAsync("runuser", ["-u", "postgres", "--", program, .. args], ct) : RunRawAsync(program, args, ct);

    private static async Task RunRawAsync(string program, string[] args, CancellationToken ct)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = "/" };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', args.Take(3))} failed ({process.ExitCode}): {(await stderr).Trim()} {(await stdout).Trim()}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsPortFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string Secret() => Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();

    public static void WritePrivate(string path, string content)
    {
        File.WriteAllText(path, "");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.WriteAllText(path, content);
    }
}
