using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace Plugboard.Tests;

/// <summary>
/// The embedded cluster shared by several processes, as the README's "Scaling out" suggests: `up`, then a
/// `worker` beside it. Only the process that started the cluster stops it.
/// </summary>
public sealed class EmbeddedClusterTests : IAsyncLifetime
{
    private readonly string _home = Directory.CreateTempSubdirectory("plugboard-embedded").FullName;
    private readonly List<Process> _processes = [];
    private readonly ConcurrentQueue<string> _output = new();

    public Task InitializeAsync()
    {
        // As root the cluster runs as the postgres user, which must be able to enter the home directory.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(_home, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                                    | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var process in _processes.Where(p => !p.HasExited))
        {
            await SignalAsync(process, "TERM");
            if (!process.WaitForExit(30_000))
            {
                process.Kill(entireProcessTree: true);
            }
        }
        var stop = Start("db", "stop");
        await stop.WaitForExitAsync();
        Directory.Delete(_home, recursive: true);
    }

    private Process Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    private Process Start(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugboard.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        // The embedded default: no database or key ring from the test run's environment.
        foreach (var variable in new[] { "DATABASE_URL", "PLUGBOARD_DB_ROLE_PASSWORD", "PLUGBOARD_KEYS", "PLUGBOARD_KEYS_FILE", "PLUGBOARD_API_DATABASE_URL", "PLUGBOARD_WORKER_DATABASE_URL" })
        {
            start.Environment.Remove(variable);
        }
        start.Environment["PLUGBOARD_HOME"] = _home;
        start.Environment["PLUGBOARD_TEMPLATES"] = Path.Combine(Infrastructure.PlugboardServer.RepoRoot, "templates");
        start.Environment["NO_COLOR"] = "1";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start)!;
        var name = args[0];
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { _output.Enqueue($"[{name}] {e.Data}"); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { _output.Enqueue($"[{name}] {e.Data}"); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add(process);
        return process;
    }

    private static async Task SignalAsync(Process process, string signal)
    {
        using var kill = Process.Start("kill", ["-s", signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    private async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}:\n{string.Join("\n", _output.TakeLast(40))}");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Stopping_a_worker_beside_up_leaves_the_shared_cluster_and_the_api_running()
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        var up = Start(new Dictionary<string, string> { ["PLUGBOARD_URLS"] = url }, "up");
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(10) };
        async Task<HttpStatusCode?> StatusAsync(string path)
        {
            try
            {
                return (await http.GetAsync(path)).StatusCode;
            }
            catch (HttpRequestException)
            {
                return null;
            }
        }
        await WaitForAsync(async () => await StatusAsync("/readyz") == HttpStatusCode.OK, "up to be ready");
        var key = (await File.ReadAllTextAsync(Path.Combine(_home, "bootstrap.key"))).Trim();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var workerUrl = $"http://127.0.0.1:{FreePort()}";
        var worker = Start(new Dictionary<string, string> { ["PLUGBOARD_WORKER_URLS"] = workerUrl }, "worker");
        await WaitForAsync(() => Task.FromResult(_output.Any(l => l.StartsWith("[worker]", StringComparison.Ordinal) && l.Contains("Application started", StringComparison.Ordinal))), "the worker to start");
        // A worker listens for health checks only: no API, no API document, no reference page.
        using (var workerHttp = new HttpClient { BaseAddress = new Uri(workerUrl), Timeout = TimeSpan.FromSeconds(10) })
        {
            Assert.Equal(HttpStatusCode.OK, (await workerHttp.GetAsync("/healthz")).StatusCode);
            foreach (var path in new[] { "/openapi/v1.json", "/docs", "/v1/workspaces" })
            {
                Assert.Equal((path, HttpStatusCode.NotFound), (path, (await workerHttp.GetAsync(path)).StatusCode));
            }
        }
        await SignalAsync(worker, "TERM");
        await worker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(worker.ExitCode == 0, string.Join("\n", _output.TakeLast(30)));
        Assert.DoesNotContain(_output, l => l.StartsWith("[worker] Stopping PostgreSQL", StringComparison.Ordinal));

        // The API still answers, from the database the worker did not stop.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync("/readyz"));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync("/v1/workspaces"));
        Assert.True(File.Exists(Path.Combine(_home, "pgdata", "postmaster.pid")));

        // `up` started the cluster, so stopping `up` stops it.
        await SignalAsync(up, "TERM");
        await up.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Contains(_output, l => l.StartsWith("[up] Stopping PostgreSQL", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_home, "pgdata", "postmaster.pid")));
    }
}
