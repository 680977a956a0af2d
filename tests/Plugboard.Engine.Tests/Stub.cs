using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public sealed record SeenRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>A real Kestrel server on 127.0.0.1 (random port) that records every request it receives.</summary>
public sealed class Stub : IAsyncDisposable
{
    private readonly WebApplication _app;

    private Stub(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }
    public int Port => new Uri(Url).Port;
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();
    public int Count(string path) => Requests.Count(r => r.PathAndQuery.Split('?')[0] == path);

    public static async Task<Stub> StartAsync(Action<WebApplication> map)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        Stub? stub = null;
        app.Use(async (context, next) =>
        {
            context.Request.EnableBuffering();
            var body = await new StreamReader(context.Request.Body).ReadToEndAsync(context.RequestAborted);
            context.Request.Body.Position = 0;
            stub!.Requests.Enqueue(new SeenRequest(context.Request.Method, context.Request.Path + context.Request.QueryString,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), body));
            await next(context);
        });
        map(app);
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        stub = new Stub(app, url);
        return stub;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

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
