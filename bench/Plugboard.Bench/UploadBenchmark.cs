using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Security;

namespace Plugboard.Bench;

/// <summary>
/// A batch of mixed files (1 GiB by default: a few large, more medium, most small; text, Markdown, JSON, HTML,
/// WebVTT) uploaded through the API by 4 parallel clients into a `plugboard serve` process of its own (workers off,
/// so processing does not compete; warmed up by a smaller batch first), against a plain copy of the same bytes by 4
/// threads with the same durability (each file flushed to disk), run before and after the upload (the faster counts). Prints both MB/s, the server's peak RSS growth over idle, and last
/// <c>ratio: upload MB/s / copy MB/s</c>.
/// </summary>
public static class UploadBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var megabytes = BenchTools.Arg(args, "--mb", 1024);
        var parallel = BenchTools.Arg(args, "--clients", 4);
        var settings = await BenchDatabase.CreateAsync("upload");
        Migrator.Up(settings);
        var root = Directory.CreateTempSubdirectory("plugboard-bench-upload");
        var source = Directory.CreateDirectory(Path.Combine(root.FullName, "source"));
        var files = Generate(source.FullName, (long)megabytes * 1024 * 1024);
        var bytes = files.Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"{files.Count} files, {bytes / 1024.0 / 1024:F0} MB ({files.Count(f => new FileInfo(f).Length >= 32 << 20)} of 32 MB and more)");

        var keys = KeyRing.Generate().ToJson();
        await using var db = new Db(settings);
        var owner = await Bootstrap.EnsureOwnerAsync(db, root.FullName, "owner@upload.bench", CancellationToken.None);
        var port = FreePort();
        using var server = StartServer(settings, keys, Path.Combine(root.FullName, "home"), port);
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = parallel * 2 })
            {
                BaseAddress = new Uri($"http://127.0.0.1:{port}/"),
                Timeout = Timeout.InfiniteTimeSpan,
            };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
            await WaitHealthyAsync(http, server);
            var prefix = $"v1/workspaces/{owner.WorkspaceId}";

            // Warm the server up with a smaller batch of the same mix (its code paths compiled), then take its idle
            // size and reset its peak.
            var warm = Directory.CreateDirectory(Path.Combine(root.FullName, "warm"));
            var warmFiles = Generate(warm.FullName, 96L * 1024 * 1024, seed: 5);
            await UploadAllAsync(http, prefix, warmFiles, parallel);
            await Task.Delay(2000);
            var idle = Status(server.Id, "VmRSS");
            File.WriteAllText($"/proc/{server.Id}/clear_refs", "5"); // resets VmHWM, the peak resident set

            // The copy runs before and after the upload (the faster counts), each phase from clean page-cache writeback.
            var copySeconds = await CopyAsync(files, Path.Combine(root.FullName, "copy-1"), parallel);
            Sync();
            var watch = Stopwatch.StartNew();
            var accepted = await UploadAllAsync(http, prefix, files, parallel);
            var uploadSeconds = watch.Elapsed.TotalSeconds;
            var peak = Status(server.Id, "VmHWM");
            copySeconds = Math.Min(copySeconds, await CopyAsync(files, Path.Combine(root.FullName, "copy-2"), parallel));

            var mb = bytes / 1024.0 / 1024;
            Console.WriteLine($"accepted {accepted} of {files.Count} files");
            Console.WriteLine($"copy_mb_per_s: {mb / copySeconds:F1}");
            Console.WriteLine($"upload_mb_per_s: {mb / uploadSeconds:F1}");
            Console.WriteLine($"server idle RSS: {idle / 1024.0:F0} MB; peak during the upload: {peak / 1024.0:F0} MB");
            Console.WriteLine($"peak_rss_growth_mb: {Math.Max(0, peak - idle) / 1024.0:F0}");
            Console.WriteLine($"ratio: {copySeconds / uploadSeconds:F3}");
            return accepted == files.Count ? 0 : 1;
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            root.Delete(recursive: true);
        }
    }

    private static async Task<double> CopyAsync(List<string> files, string directory, int parallel)
    {
        Sync();
        var target = Directory.CreateDirectory(directory);
        var watch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (file, ct) =>
        {
            await using var input = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.Asynchronous);
            await using var output = new FileStream(Path.Combine(target.FullName, Path.GetFileName(file)), FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, FileOptions.Asynchronous);
            await input.CopyToAsync(output, ct);
            output.Flush(flushToDisk: true);
        });
        var seconds = watch.Elapsed.TotalSeconds;
        target.Delete(recursive: true);
        return seconds;
    }

    private static void Sync()
    {
        using var sync = Process.Start("sync");
        sync.WaitForExit();
    }

    private static async Task<int> UploadAllAsync(HttpClient http, string prefix, List<string> files, int parallel)
    {
        using var created = await http.PostAsJsonAsync($"{prefix}/uploads/batches", new { expected_files = files.Count });
        created.EnsureSuccessStatusCode();
        var batchId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        var accepted = 0;
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (file, ct) =>
        {
            await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.Asynchronous);
            using var form = new MultipartFormDataContent();
            var part = new StreamContent(stream, 81920);
            part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "file", FileNameStar = Path.GetFileName(file) };
            form.Add(part);
            using var response = await http.PostAsync($"{prefix}/uploads/batches/{batchId}/files", form, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode == HttpStatusCode.Created)
            {
                Interlocked.Increment(ref accepted);
            }
            else
            {
                Console.WriteLine($"{Path.GetFileName(file)}: {(int)response.StatusCode} {body}");
            }
        });
        return accepted;
    }

    /// <summary>Files of every shape the bucket takes, each with distinct content (no duplicates), summing to about <paramref name="total"/> bytes.</summary>
    private static List<string> Generate(string directory, long total, int seed = 23)
    {
        var random = new Random(seed);
        var vocabulary = Corpus.Vocabulary(random, 5000);
        string[] kinds = ["txt", "md", "json", "html", "vtt"];
        var files = new List<string>();
        long written = 0;
        for (var i = 0; written < total; i++)
        {
            // Of every 60 files: one large (32–64 MB), 20 medium (1–4 MB), the rest small (8–128 KB).
            var size = i % 60 == 0 ? random.NextInt64(32L << 20, 64L << 20)
                : i % 3 == 1 ? random.NextInt64(1L << 20, 4L << 20)
                : random.NextInt64(8 << 10, 128 << 10);
            size = Math.Min(size, total - written + 1024);
            var kind = kinds[i % kinds.Length];
            var path = Path.Combine(directory, $"file-{i:D5}.{kind}");
            using (var writer = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16))
            {
                long length = 0;
                void Write(string text)
                {
                    writer.Write(text);
                    length += text.Length;
                }
                Write(kind switch { "json" => "{\"items\": [", "html" => "<html><head><title>Bench</title></head><body>", "vtt" => "WEBVTT\n\n", _ => $"# File {i}\n\n" });
                for (var line = 0; length < size; line++)
                {
                    var sentence = Corpus.Sentence(random, vocabulary, 12);
                    Write(kind switch
                    {
                        "json" => (line > 0 ? "," : "") + $"{{\"id\": {line}, \"text\": \"{sentence}\"}}\n",
                        "html" => $"<p>{sentence}</p>\n",
                        "vtt" => $"{TimeSpan.FromSeconds(line % 80000):hh\\:mm\\:ss}.000 --> {TimeSpan.FromSeconds(line % 80000 + 1):hh\\:mm\\:ss}.000\n<v Speaker {line % 3}>{sentence}</v>\n\n",
                        _ => sentence + (line % 5 == 4 ? "\n\n" : " "),
                    });
                }
                Write(kind switch { "json" => "]}", "html" => "</body></html>", _ => "\n" });
                written += length;
            }
            files.Add(path);
        }
        return files;
    }

    private static Process StartServer(DatabaseSettings settings, string keys, string home, int port)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugboard.dll"));
        start.ArgumentList.Add("serve");
        start.Environment["DATABASE_URL"] = settings.OwnerConnectionString;
        start.Environment["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword ?? "";
        start.Environment["PLUGBOARD_KEYS"] = keys;
        start.Environment["PLUGBOARD_HOME"] = home;
        start.Environment["PLUGBOARD_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["PLUGBOARD_LOG_LEVEL"] = "Warning";
        start.Environment["PLUGBOARD_UPLOAD_MAX_MB"] = "100";
        start.Environment["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000000";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine($"server: {e.Data}"); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitHealthyAsync(HttpClient http, Process server)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline; await Task.Delay(200))
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"the server exited with {server.ExitCode}");
            }
            try
            {
                using var response = await http.GetAsync("healthz");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
        }
        throw new TimeoutException("the server did not become healthy");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A /proc/PID/status field in KiB (VmRSS: resident now; VmHWM: the peak since the last reset).</summary>
    private static long Status(int pid, string field) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
}
