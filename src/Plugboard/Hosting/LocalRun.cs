using System.Text.Json;
using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Spectre.Console;

namespace Plugboard.Hosting;

/// <summary>
/// `plugboard run` and `plugboard manifest validate`: the test bench for people writing manifests. No server, no
/// database: the engine runs the manifest here, printing each (redacted) request as it happens.
/// </summary>
public static partial class LocalRun
{
    public static int Validate(string path)
    {
        if (!File.Exists(path))
        {
            AnsiConsole.MarkupLine($"[red]No such file:[/] {Markup.Escape(path)}");
            return 2;
        }
        var result = Parse(File.ReadAllText(path));
        if (result.Issues.Count == 0)
        {
            AnsiConsole.MarkupLine($"[green]valid[/] {Markup.Escape(path)}");
            return 0;
        }
        foreach (var issue in result.Issues)
        {
            var where = issue.Line is { } line ? $"{path}:{line}:{issue.Column ?? 1}" : path;
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(where)}[/] [bold]{Markup.Escape(issue.Pointer)}[/] {Markup.Escape(issue.Message)}");
        }
        AnsiConsole.MarkupLine($"[red]{result.Issues.Count} problem(s)[/]");
        return 1;
    }

    public static async Task<int> RunAsync(string path, string[] inputs, string[] config, string? credentialsFile, HttpClient http, RunnerOptions options, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            AnsiConsole.MarkupLine($"[red]No such file:[/] {Markup.Escape(path)}");
            return 2;
        }
        var parsed = Parse(await File.ReadAllTextAsync(path, ct));
        if (parsed.Manifest is null)
        {
            return Validate(path);
        }
        var credentials = credentialsFile is null
            ? new Dictionary<string, string>()
            : JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(credentialsFile, ct))
              ?? throw new InvalidOperationException("The credentials file must be a JSON object of strings.");
        var request = new RunRequest(Pairs(inputs, "--input"), Pairs(config, "--config"), credentials, new InMemoryCredentialStore(credentials))
        {
            ExecutionId = "local-" + Guid.NewGuid().ToString("N"),
        };
        var runner = new ConnectorRunner(http, options);
        RunResult? result = null;
        var observer = new ConsoleObserver();
        await AnsiConsole.Status().Spinner(Spinner.Known.Dots).StartAsync($"Running {Markup.Escape(Path.GetFileName(path))} …", async status =>
        {
            observer.Status = status;
            result = await runner.RunAsync(parsed.Manifest, request, observer, ct);
        });
        var color = result!.Status == RunStatus.Succeeded ? "green" : "red";
        AnsiConsole.MarkupLine($"[{color}]{result.Status.ToString().ToLowerInvariant()}[/] after {observer.Requests} request(s)");
        if (result.Error is not null)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(result.Error)}[/]");
        }
        if (result.Output is not null)
        {
            Console.WriteLine(result.Output.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        return result.Status == RunStatus.Succeeded ? 0 : 1;
    }

    private static ManifestParseResult Parse(string text) => ManifestParser.ParseFile(text);

    /// <summary>k=v pairs; a value that parses as JSON (number, boolean, object, array) keeps that type.</summary>
    internal static JsonObject Pairs(string[] pairs, string option)
    {
        var result = new JsonObject();
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new InvalidOperationException($"{option} takes key=value, got '{pair}'.");
            }
            var value = pair[(eq + 1)..];
            JsonNode? node;
            try
            {
                node = value.Length > 0 && (char.IsDigit(value[0]) || value[0] is '-' or '{' or '[' || value is "true" or "false") ? JsonNode.Parse(value) : JsonValue.Create(value);
            }
            catch (JsonException)
            {
                node = JsonValue.Create(value);
            }
            result[pair[..eq]] = node;
        }
        return result;
    }

    private sealed class ConsoleObserver : IRunObserver
    {
        public StatusContext? Status { get; set; }
        public int Requests { get; private set; }

        public ValueTask OnStepAsync(StepLogEntry entry, CancellationToken ct)
        {
            Requests++;
            var mark = entry.Skipped ? "[grey]–[/]" : entry.Error is null && entry.Status is >= 200 and < 300 ? "[green]✓[/]" : "[red]✗[/]";
            var where = entry.Page is { } page ? $" page {page}" : entry.Item is { } item ? $" item {item}" : "";
            AnsiConsole.MarkupLine($"{mark} [bold]{Markup.Escape(entry.StepId)}[/]{where} {entry.Method} {Markup.Escape(entry.Url)} " +
                                   $"{entry.Status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"} {entry.DurationMs} ms {entry.Bytes} B" +
                                   (entry.Attempt > 1 ? $" (attempt {entry.Attempt})" : "") + (entry.Error is null ? "" : $" [red]{Markup.Escape(entry.Error)}[/]"));
            Status?.Status($"{Requests} request(s) …");
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Token refreshes in a local run stay in memory (nothing to persist them to).</summary>
    private sealed class InMemoryCredentialStore(Dictionary<string, string> initial) : ICredentialStore
    {
        private readonly SemaphoreSlim _lock = new(1, 1);
        private IReadOnlyDictionary<string, string> _current = initial;

        public async Task<IReadOnlyDictionary<string, string>> UpdateAsync(
            Func<IReadOnlyDictionary<string, string>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> refresh, CancellationToken ct)
        {
            await _lock.WaitAsync(ct);
            try
            {
                return _current = await refresh(_current, ct);
            }
            finally
            {
                _lock.Release();
            }
        }
    }
}
