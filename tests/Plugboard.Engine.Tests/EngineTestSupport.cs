using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public static class Engine
{
    public static RunnerOptions FastOptions { get; } = new()
    {
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        MaxRetryDelay = TimeSpan.FromSeconds(5),
        DefaultStepTimeout = TimeSpan.FromSeconds(10),
        ExecutionTimeout = TimeSpan.FromSeconds(30),
    };

    public static HttpClient Client(string allow = "127.0.0.1/32") =>
        new(SsrfGuard.CreateHandler(SsrfOptions.FromList(allow))) { Timeout = Timeout.InfiniteTimeSpan };

    public static Manifest Manifest(string yaml)
    {
        var result = ManifestParser.Parse(yaml);
        Assert.True(result.Issues.Count == 0, string.Join("\n", result.Issues.Select(i => $"{i.Pointer} ({i.Line}:{i.Column}): {i.Message}")));
        return result.Manifest!;
    }

    public static Task<RunResult> RunAsync(string yaml, Dictionary<string, string>? credentials = null, JsonObject? inputs = null, RunnerOptions? options = null,
        ICredentialStore? store = null, string allow = "127.0.0.1/32", CancellationToken ct = default) =>
        new ConnectorRunner(Client(allow), options ?? FastOptions).RunAsync(Manifest(yaml),
            new RunRequest(inputs ?? [], [], credentials ?? [], store), null, ct);

    public static void Succeeded(RunResult result) =>
        Assert.True(result.Status == RunStatus.Succeeded, $"{result.Status}: {result.Error}\n{string.Join("\n", result.Log.Select(l => $"{l.Method} {l.Url} {l.Status} {l.Error}"))}");
}

/// <summary>A credential store like the host's: one refresh at a time, always handing the freshest fields to the callback.</summary>
public sealed class TestCredentialStore(Dictionary<string, string> fields) : ICredentialStore
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    public Dictionary<string, string> Fields { get; private set; } = fields;
    public int Updates { get; private set; }

    public async Task<IReadOnlyDictionary<string, string>> UpdateAsync(
        Func<IReadOnlyDictionary<string, string>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> refresh, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var result = await refresh(new Dictionary<string, string>(Fields), ct);
            if (!result.SequenceEqual(Fields))
            {
                Fields = new Dictionary<string, string>(result);
                Updates++;
            }
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }
}
