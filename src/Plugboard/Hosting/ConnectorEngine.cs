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
    public static SsrfOptions SsrfOptionsFrom(string? allow, string? proxy = null)
    {
        var proxyUri = string.IsNullOrWhiteSpace(proxy) ? null
            : Uri.TryCreate(proxy.Trim(), UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp ? uri
            : throw new InvalidSettingException($"PLUGBOARD_OUTBOUND_PROXY must be an http:// URL; it is '{proxy}'.");
        try
        {
            return SsrfOptions.FromList(allow, proxyUri);
        }
        catch (FormatException)
        {
            throw new InvalidSettingException($"PLUGBOARD_OUTBOUND_ALLOW must list CIDRs or addresses separated by commas (e.g. 127.0.0.1/32); it is '{allow}'.");
        }
    }

    public static RunnerOptions RunnerOptionsFrom(IConfiguration configuration) => new()
    {
        ExecutionTimeout = TimeSpan.FromSeconds(Settings.Int(configuration, "PLUGBOARD_EXECUTION_TIMEOUT_SECONDS", 300, 1, 86_400)),
        DefaultStepTimeout = TimeSpan.FromSeconds(Settings.Int(configuration, "PLUGBOARD_STEP_TIMEOUT_SECONDS", 30, 1, 3600)),
        MaxOutputBytes = Settings.Int(configuration, "PLUGBOARD_MAX_OUTPUT_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    };
}
