using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Spectre.Console;

namespace Plugboard.Cli;

/// <summary>
/// `plugboard upload DIR --workspace W`: uploads a folder as one batch through the API, several files at a time, with a
/// progress bar of files and bytes and a summary (accepted, duplicate, skipped, refused with the reason). A file whose
/// bytes the workspace already holds is skipped before it is sent, so a rerun uploads only what is new or changed.
/// </summary>
public static class UploadCommand
{
    public static void Add(RootCommand root, CliContext cli)
    {
        var directory = new Argument<DirectoryInfo>("DIR") { Description = "The folder to upload (with its subfolders; hidden files and folders are left out)." };
        var workspace = new Option<string>("--workspace") { Description = "The workspace id to upload into.", Required = true };
        var url = new Option<string?>("--url") { Description = "The API's base URL (default: PLUGBOARD_URL, else the local server)." };
        var key = new Option<string?>("--key") { Description = "An API key of a member (default: PLUGBOARD_API_KEY, else the bootstrap key of PLUGBOARD_HOME)." };
        var parallel = new Option<int>("--parallel") { Description = "Files uploaded at once.", DefaultValueFactory = _ => 4 };
        var wait = new Option<bool>("--wait") { Description = "Wait until the server has processed every file, showing its progress." };
        var upload = new Command("upload", "Upload a folder into a workspace as a batch, with progress and a summary; reruns skip files already uploaded.")
        {
            directory, workspace, url, key, parallel, wait,
        };
        upload.SetAction(async (parse, ct) =>
        {
            var dir = parse.GetValue(directory)!;
            if (!dir.Exists)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(dir.FullName)} is not a folder.[/]");
                return 2;
            }
            var apiKey = parse.GetValue(key) ?? Environment.GetEnvironmentVariable("PLUGBOARD_API_KEY")
                ?? (File.Exists(Path.Combine(cli.Home, "bootstrap.key")) ? (await File.ReadAllTextAsync(Path.Combine(cli.Home, "bootstrap.key"), ct)).Trim() : null);
            if (string.IsNullOrEmpty(apiKey))
            {
                AnsiConsole.MarkupLine("[red]No API key:[/] pass --key, or set PLUGBOARD_API_KEY.");
                return 2;
            }
            var baseUrl = parse.GetValue(url) ?? Environment.GetEnvironmentVariable("PLUGBOARD_URL") ?? cli.Urls.Split(';')[0];
            if (!Uri.TryCreate(baseUrl.TrimEnd('/') + "/", UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(baseUrl)} is not a URL to reach the server;[/] pass --url (for example http://127.0.0.1:5080).");
                return 2;
            }
            using var http = new HttpClient { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            try
            {
                return await RunAsync(http, dir, parse.GetValue(workspace)!, Math.Clamp(parse.GetValue(parallel), 1, 64), parse.GetValue(wait), ct);
            }
            catch (HttpRequestException e) when (e.StatusCode is null)
            {
                AnsiConsole.MarkupLine($"[red]Cannot reach {Markup.Escape(baseUrl)}[/] ({Markup.Escape(e.Message)}). Is the server running? Pass --url.");
                return 2;
            }
            catch (ApiRefusal e)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Message)}[/]");
                return 2;
            }
        });
        root.Subcommands.Add(upload);
    }

    private sealed class ApiRefusal(string message) : Exception(message);

    private sealed record LocalFile(FileInfo File, string RelativeName, string Sha256);

    private sealed record Outcome(string Name, string Result, string? Reason);

    private static async Task<int> RunAsync(HttpClient http, DirectoryInfo dir, string workspace, int parallel, bool wait, CancellationToken ct)
    {
        var prefix = $"v1/workspaces/{Uri.EscapeDataString(workspace)}";
        var found = dir.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System | FileAttributes.ReparsePoint })
            .Where(f => !Path.GetRelativePath(dir.FullName, f.FullName).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')))
            .OrderBy(f => f.FullName, StringComparer.Ordinal).ToList();
        var files = new List<LocalFile>();
        var skipped = 0;
        await AnsiConsole.Progress().AutoClear(true).StartAsync(async progress =>
        {
            var checking = progress.AddTask("Checking what the workspace has", maxValue: Math.Max(1, found.Count));
            await Parallel.ForEachAsync(found, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = ct }, async (file, token) =>
            {
                var hash = await HashAsync(file, token);
                var existing = await SendAsync(http, () => new HttpRequestMessage(HttpMethod.Get, $"{prefix}/documents?source=upload&content_hash={hash}&limit=1"), token);
                if (existing.GetProperty("items").GetArrayLength() > 0)
                {
                    Interlocked.Increment(ref skipped);
                }
                else
                {
                    lock (files)
                    {
                        files.Add(new LocalFile(file, Path.GetRelativePath(dir.FullName, file.FullName), hash));
                    }
                }
                checking.Increment(1);
            });
        });
        if (files.Count == 0)
        {
            AnsiConsole.MarkupLine($"Nothing to upload: {found.Count} file(s), {skipped} already in workspace {Markup.Escape(workspace)}.");
            return 0;
        }
        files.Sort((a, b) => string.CompareOrdinal(a.RelativeName, b.RelativeName));
        var batch = await SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, $"{prefix}/uploads/batches")
        {
            // Open (no expected count), closed once every file was sent: files the server never took do not hold it open.
            Content = JsonContent.Create(new { metadata = new { source = "plugboard upload", folder = dir.Name } }),
        }, ct);
        var batchId = batch.GetProperty("id").GetString()!;
        var outcomes = new List<Outcome>();
        var totalBytes = files.Sum(f => f.File.Length);
        await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .StartAsync(async progress =>
            {
                var bytes = progress.AddTask($"{files.Count} files", maxValue: Math.Max(1, totalBytes));
                var done = 0;
                await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = ct }, async (file, token) =>
                {
                    var outcome = await UploadOneAsync(http, prefix, batchId, file, read => bytes.Increment(read), token);
                    lock (outcomes)
                    {
                        outcomes.Add(outcome);
                        bytes.Description = $"{++done}/{files.Count} files";
                    }
                });
            });
        await SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, $"{prefix}/uploads/batches/{batchId}/close"), ct);
        var accepted = outcomes.Count(o => o.Result == "accepted");
        var duplicate = outcomes.Count(o => o.Result == "duplicate");
        var refused = outcomes.Where(o => o.Result == "refused").OrderBy(o => o.Name, StringComparer.Ordinal).ToList();
        AnsiConsole.MarkupLine($"Batch {batchId}: {files.Count} file(s), {FormatBytes(totalBytes)} sent.");
        AnsiConsole.MarkupLine($"  accepted   {accepted}");
        AnsiConsole.MarkupLine($"  duplicate  {duplicate}");
        AnsiConsole.MarkupLine($"  skipped    {skipped} (already in the workspace)");
        AnsiConsole.MarkupLine($"  refused    {refused.Count}");
        foreach (var file in refused)
        {
            AnsiConsole.MarkupLine($"    {Markup.Escape(file.Name)}: {Markup.Escape(file.Reason ?? "refused")}");
        }
        var failedInProcessing = 0;
        if (wait)
        {
            failedInProcessing = await WaitAsync(http, prefix, batchId, ct);
        }
        else
        {
            AnsiConsole.MarkupLine($"Processing goes on on the server: GET /{prefix}/uploads/batches/{batchId} (or rerun with --wait).");
        }
        return refused.Count > 0 || failedInProcessing > 0 ? 1 : 0;
    }

    private static async Task<Outcome> UploadOneAsync(HttpClient http, string prefix, string batchId, LocalFile file, Action<long> sent, CancellationToken ct)
    {
        await using var stream = new ProgressStream(file.File.OpenRead(), sent);
        using var form = new MultipartFormDataContent();
        var part = new StreamContent(stream, 81920);
        part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "file", FileNameStar = file.RelativeName.Replace(Path.DirectorySeparatorChar, '/') };
        form.Add(part);
        using var response = await http.PostAsync($"{prefix}/uploads/batches/{batchId}/files", form, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        var body = text.Length > 0 && text[0] == '{' ? JsonDocument.Parse(text).RootElement : default;
        if (response.IsSuccessStatusCode)
        {
            var result = body.GetProperty("files")[0];
            return new Outcome(file.RelativeName, result.GetProperty("outcome").GetString()!, result.TryGetProperty("reason", out var r) ? r.GetString() : null);
        }
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.NotFound)
        {
            throw new ApiRefusal(Describe(response.StatusCode, body));
        }
        return new Outcome(file.RelativeName, "refused", body.ValueKind == JsonValueKind.Object && body.TryGetProperty("detail", out var d) ? d.GetString() : $"HTTP {(int)response.StatusCode}");
    }

    private static async Task<int> WaitAsync(HttpClient http, string prefix, string batchId, CancellationToken ct)
    {
        JsonElement batch = default;
        await AnsiConsole.Progress().StartAsync(async progress =>
        {
            var task = progress.AddTask("Processing on the server");
            while (true)
            {
                batch = await SendAsync(http, () => new HttpRequestMessage(HttpMethod.Get, $"{prefix}/uploads/batches/{batchId}"), ct);
                task.MaxValue = Math.Max(1, batch.GetProperty("total_files").GetInt32());
                task.Value = batch.GetProperty("processed_files").GetInt32() + batch.GetProperty("failed_files").GetInt32();
                if (batch.GetProperty("status").GetString() is "completed" or "completed_with_errors" or "failed" or "cancelled")
                {
                    return;
                }
                await Task.Delay(500, ct);
            }
        });
        var failures = batch.GetProperty("failures").EnumerateArray().Where(f => f.GetProperty("document_id").ValueKind == JsonValueKind.String).ToList();
        AnsiConsole.MarkupLine($"Processed: {batch.GetProperty("processed_files").GetInt32()}, failed: {batch.GetProperty("failed_files").GetInt32()} ({batch.GetProperty("status").GetString()}).");
        foreach (var failure in failures)
        {
            AnsiConsole.MarkupLine($"    {Markup.Escape(failure.GetProperty("file_name").GetString()!)}: {Markup.Escape(failure.GetProperty("reason").GetString()!)}");
        }
        return failures.Count;
    }

    private static async Task<JsonElement> SendAsync(HttpClient http, Func<HttpRequestMessage> request, CancellationToken ct)
    {
        using var message = request();
        using var response = await http.SendAsync(message, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        var body = text.Length > 0 && text[0] == '{' ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return response.IsSuccessStatusCode ? body : throw new ApiRefusal(Describe(response.StatusCode, body));
    }

    private static string Describe(HttpStatusCode status, JsonElement problem)
    {
        var detail = problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("detail", out var d) ? d.GetString() : null;
        return status switch
        {
            HttpStatusCode.Unauthorized => "The API key was refused: pass a valid key with --key or PLUGBOARD_API_KEY.",
            HttpStatusCode.Forbidden => $"Not allowed: {detail} Uploading needs the member role.",
            HttpStatusCode.NotFound => $"Not found: {detail} Check --workspace (and that the key may reach it).",
            _ => $"The server answered {(int)status}: {detail}",
        };
    }

    private static async Task<string> HashAsync(FileInfo file, CancellationToken ct)
    {
        await using var stream = file.OpenRead();
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
    }

    private static string FormatBytes(long bytes) => bytes switch
    {
        >= 1024L * 1024 * 1024 => $"{bytes / 1024.0 / 1024 / 1024:0.0} GiB",
        >= 1024L * 1024 => $"{bytes / 1024.0 / 1024:0.0} MiB",
        >= 1024 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };

    /// <summary>Reports bytes as the HTTP client reads them, for the progress bar.</summary>
    private sealed class ProgressStream(Stream inner, Action<long> read) : Stream
    {
        public override int Read(byte[] buffer, int offset, int count) => Report(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Report(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Report(int count)
        {
            read(count);
            return count;
        }

        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
