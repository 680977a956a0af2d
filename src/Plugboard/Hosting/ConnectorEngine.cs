using Plugboard.Engine.Net;
using Plugboard.Engine.Running;

namespace Plugboard.Hosting;

/// <summary>
/// Outbound connector HTTP: one named client whose handler is the SSRF guard (addresses checked after DNS, at connect
/// time), and the engine's runner on top of it. PLUGBOARD_OUTBOUND_ALLOW lists CIDRs that may be reached anyway
/// (development and tests: 127.0.0.1/32); it is empty by default.
/// </summary>
public static class ConnectorEngine
{
    public const string HttpClientName = "connectors";

    public static void Add(IServiceCollection services, IConfiguration configuration)
    {
        var ssrf = SsrfOptionsFrom(configuration["PLUGBOARD_OUTBOUND_ALLOW"], configuration["PLUGBOARD_OUTBOUND_PROXY"]);
        services.AddHttpClient(HttpClientName).ConfigurePrimaryHttpMessageHandler(sp =>
        {
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Plugboard.Outbound");
            return SsrfGuard.CreateHandler(ssrf with
            {
                OnBlocked = (host, address, reason) => logger.LogWarning("Outbound request to {Host} refused: it resolves to {Address} ({Reason})", host, address, reason),
            });
        });
        services.AddSingleton(RunnerOptionsFrom(configuration));
        // The factory's pooled, rotated handler, invoked directly: the runner applies its own step timeouts.
        services.AddTransient(sp => new ConnectorRunner(
            new HttpMessageInvoker(sp.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(HttpClientName), disposeHandler: false),
            sp.GetRequiredService<RunnerOptions>()));
    }

    /// <summary>PLUGBOARD_OUTBOUND_ALLOW (CIDRs or addresses, comma separated) and PLUGBOARD_OUTBOUND_PROXY (an http URL).</summary>
    public static SsrfOptions SsrfOptionsFrom(string? allow, string? proxy = null) => SsrfOptions.FromList(allow,
        string.IsNullOrWhiteSpace(proxy) ? null
        : Uri.TryCreate(proxy.Trim(), UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp ? uri
        : throw new InvalidOperationException($"PLUGBOARD_OUTBOUND_PROXY must be an http:// URL, got '{proxy}'."));

    public static RunnerOptions RunnerOptionsFrom(IConfiguration configuration) => new()
    {
        ExecutionTimeout = TimeSpan.FromSeconds(int.TryParse(configuration["PLUGBOARD_EXECUTION_TIMEOUT_SECONDS"], out var t) && t > 0 ? t : 300),
        DefaultStepTimeout = TimeSpan.FromSeconds(int.TryParse(configuration["PLUGBOARD_STEP_TIMEOUT_SECONDS"], out var s) && s > 0 ? s : 30),
        MaxOutputBytes = int.TryParse(configuration["PLUGBOARD_MAX_OUTPUT_BYTES"], out var o) && o > 0 ? o : 4 * 1024 * 1024,
    };
}
