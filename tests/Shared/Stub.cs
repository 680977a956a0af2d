using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Plugboard.Testing;

// One loopback stub API for every test project and benchmark (linked into each, not a project of its own).

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

    /// <param name="record">Record every request (tests); benchmarks pass false so the stub costs no more than it must.</param>
    public static async Task<Stub> StartAsync(Action<WebApplication> map, bool record = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        Stub? stub = null;
        app.Use(async (context, next) =>
        {
            if (!record)
            {
                await next(context);
                return;
            }
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
