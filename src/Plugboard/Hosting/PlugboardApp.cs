using Dapper;
using Npgsql;
using OpenTelemetry;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Plugboard.Data;
using Plugboard.Features.Admin;
using Plugboard.Features.Analytics;
using Plugboard.Features.ApiKeys;
using Plugboard.Features.AuditLog;
using Plugboard.Features.Connectors;
using Plugboard.Features.Credentials;
using Plugboard.Features.Dashboard;
using Plugboard.Features.Documents;
using Plugboard.Features.Executions;
using Plugboard.Features.Manifests;
using Plugboard.Features.Health;
using Plugboard.Features.Jobs;
using Plugboard.Features.Members;
using Plugboard.Features.Retention;
using Plugboard.Features.Search;
using Plugboard.Features.Syncs;
using Plugboard.Features.Templates;
using Plugboard.Features.Webhooks;
using Plugboard.Features.Workspaces;
using Plugboard.Http;
using Plugboard.Jobs;
using Plugboard.Observability;
using Plugboard.Security;
using Plugboard.Storage;
using Scalar.AspNetCore;

namespace Plugboard.Hosting;

/// <summary>What a process runs: the API, the background workers, or both (`plugboard serve`, `worker`, `up`).</summary>
public enum HostMode
{
    All,
    Api,
    Worker,
}

/// <summary>Options a host (the CLI, or a test) passes in beyond configuration.</summary>
public sealed record PlugboardHostOptions(string Home, string Urls, TextWriter? LogOutput = null, bool CreateKeyRing = true, HostMode Mode = HostMode.All);

public static class PlugboardApp
{
    public const long MaxRequestBodyBytes = 1024 * 1024;

    /// <summary>How much of an oversized body is read and discarded before the 413, so a client that sends its whole
    /// body before reading the answer gets the problem rather than a reset connection.</summary>
    public const long MaxDrainedBodyBytes = 8 * 1024 * 1024;

    internal static async Task DrainAsync(HttpContext http)
    {
        if (http.Request.ContentLength > MaxDrainedBodyBytes || http.Features.Get<IHttpMaxRequestBodySizeFeature>() is not { IsReadOnly: false } limit)
        {
            return;
        }
        limit.MaxRequestBodySize = MaxDrainedBodyBytes;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await http.Request.Body.CopyToAsync(Stream.Null, timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or BadHttpRequestException)
        {
            // The client stopped sending or went away: answer anyway.
        }
    }

    /// <summary>Reads every numeric, boolean and enumerated setting once, so a bad one fails the start with its name.</summary>
    public static void CheckSettings(IConfiguration configuration, string home)
    {
        _ = DocumentPipelineOptions.FromConfiguration(configuration, home, BucketSettings.FromConfiguration(configuration, home));
        _ = JobWorkerOptions.FromConfiguration(configuration);
        _ = ConnectorEngine.RunnerOptionsFrom(configuration);
        _ = ConnectorEngine.SsrfOptionsFrom(configuration["PLUGBOARD_OUTBOUND_ALLOW"], configuration["PLUGBOARD_OUTBOUND_PROXY"]);
        RateLimitBuckets.FromConfiguration(configuration).Dispose();
        _ = Settings.Enum(configuration, "PLUGBOARD_LOG_LEVEL", LogLevel.Information);
        _ = Settings.Bool(configuration, "PLUGBOARD_RUN_WORKERS", true);
        _ = OAuthSettings.FromConfiguration(configuration);
        _ = Features.Retention.RetentionOptions.FromConfiguration(configuration);
        _ = WebhookSettings.FromConfiguration(configuration);
        _ = OidcSignInSettings.FromConfiguration(configuration);
        _ = Features.Syncs.SyncSchedulerOptions.FromConfiguration(configuration);
        _ = Features.Dashboard.DashboardSessions.Lifetime(configuration);
        _ = Features.Documents.ObjectSweeper.GracePeriod(configuration);
    }

    static PlugboardApp() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    public static WebApplication Build(string[] args, PlugboardHostOptions options, IDictionary<string, string?>? settings = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }
        var configuration = builder.Configuration;
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxRequestBodyBytes;
            k.AddServerHeader = false;
            k.ConfigureEndpointDefaults(ServerRejections.Use);
        });

        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new RedactingJsonLoggerProvider(options.LogOutput ?? Console.Out,
            Settings.Enum(configuration, "PLUGBOARD_LOG_LEVEL", LogLevel.Information)));
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        var dbSettings = DatabaseSettings.FromConfiguration(configuration);
        builder.Services.AddSingleton(dbSettings);
        builder.Services.AddSingleton<Db>();
        builder.Services.AddScoped<RequestDb>();
        builder.Services.AddSingleton(KeyRing.Load(configuration, options.Home, options.CreateKeyRing));
        builder.Services.AddHostedService<KeyRingCanary>();

        ConnectorEngine.Add(builder.Services, configuration);
        builder.Services.AddSingleton<ManifestCache>();
        builder.Services.AddSingleton(OAuthSettings.FromConfiguration(configuration));
        builder.Services.AddJobHandler<ExecutionJobHandler>();
        var bucket = BucketSettings.FromConfiguration(configuration, options.Home);
        builder.Services.AddSingleton(bucket);
        builder.Services.AddSingleton(bucket.CreateStore());
        builder.Services.AddSingleton(DocumentPipelineOptions.FromConfiguration(configuration, options.Home, bucket));
        builder.Services.AddSingleton<DocumentUploads>();
        builder.Services.AddSingleton<ObjectSweeper>();
        builder.Services.AddSingleton<SyncedFileDownloader>();
        builder.Services.AddJobHandler<DocumentJobHandler>();
        builder.Services.AddSingleton(SyncSchedulerOptions.FromConfiguration(configuration));
        builder.Services.AddSingleton(RetentionOptions.FromConfiguration(configuration));
        builder.Services.AddSingleton<RetentionPruner>();
        builder.Services.AddSingleton<SyncScheduler>();
        builder.Services.AddJobHandler<SyncJobHandler>();
        builder.Services.AddSingleton(WebhookSettings.FromConfiguration(configuration));
        builder.Services.AddSingleton<WebhookEndpoints>();
        builder.Services.AddSingleton<WebhookEventWriter>();
        builder.Services.AddSingleton<WebhookReceiver>();
        builder.Services.AddJobHandler<WebhookJobHandler>();
        var runWorkers = options.Mode != HostMode.Api && Settings.Bool(configuration, "PLUGBOARD_RUN_WORKERS", true);
        if (runWorkers)
        {
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ObjectSweeper>());
            builder.Services.AddHostedService(sp => sp.GetRequiredService<SyncScheduler>());
        }
        builder.Services.AddPlugboardJobs(configuration, runWorkers);
        RateLimitBuckets.Add(builder.Services, configuration);

        builder.Services.Configure<JsonOptions>(o => ApiJson.Configure(o.SerializerOptions));
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.Customize);
        builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
        builder.Services.AddOpenApi(OpenApiContract.Configure);

        var oidcAuthority = configuration["PLUGBOARD_OIDC_AUTHORITY"];
        if (OidcSignInSettings.FromConfiguration(configuration) is { } singleSignOn)
        {
            DashboardOidc.Add(builder.Services, singleSignOn);
        }
        var auth = builder.Services.AddAuthentication("bearer")
            .AddPolicyScheme("bearer", "API key, OIDC token or dashboard session", o => o.ForwardDefaultSelector = http =>
                ApiKeyAuthenticationHandler.BearerToken(http.Request) is { } token
                    ? oidcAuthority is { Length: > 0 } && !ApiKeys.LooksLikeKey(token) ? JwtBearerDefaults.AuthenticationScheme : ApiKeyAuthenticationHandler.SchemeName
                    : http.Request.Cookies.ContainsKey(DashboardSessions.CookieName) ? DashboardSessionAuthenticationHandler.SchemeName
                    : ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddScheme<AuthenticationSchemeOptions, DashboardSessionAuthenticationHandler>(DashboardSessionAuthenticationHandler.SchemeName, null);
        if (oidcAuthority is { Length: > 0 })
        {
            auth.AddJwtBearer(o => OidcSignIn.Configure(o, oidcAuthority, configuration["PLUGBOARD_OIDC_AUDIENCE"]));
        }
        builder.Services.AddAuthorization();

        // Traces and metrics go to OTLP when an endpoint is configured; logs never do, so every log line
        // passes the redacting provider. Without an exporter nothing is instrumented: spans nobody reads would
        // cost CPU on every request, query and job.
        if (!string.IsNullOrEmpty(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService("plugboard"))
                .WithTracing(t => t.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation().AddNpgsql().AddOtlpExporter())
                .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation().AddRuntimeInstrumentation()
                    .AddMeter("Npgsql", JobMetrics.MeterName, WebhookReceiver.MeterName).AddOtlpExporter());
        }

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use(async (http, next) =>
        {
            if (http.GetEndpoint()?.Metadata is { } metadata
                && (metadata.GetMetadata<StreamedUploadMetadata>() is not null || metadata.GetMetadata<RawBodyMetadata>() is not null))
            {
                // A file upload (multipart, streamed file by file) or a webhook (raw bytes): the handler bounds its own body.
                Paging.BindList(http.Request.Path);
                await next(http);
                return;
            }
            // Bodies are JSON or nothing; refuse anything else before binding.
            if (http.Request.ContentLength > 0 || http.Request.Headers.TransferEncoding.Count > 0)
            {
                var type = http.Request.ContentType ?? "";
                if (http.Request.Path.StartsWithSegments("/v1") && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
                    && !type.Contains("+json", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ProblemException(415, "unsupported-media-type", "Unsupported media type", "Send the body as application/json.");
                }
            }
            if (http.Request.ContentLength > MaxRequestBodyBytes)
            {
                await DrainAsync(http);
                throw new ProblemException(413, "payload-too-large", "Payload too large", $"Request bodies are limited to {MaxRequestBodyBytes / 1024} KiB.");
            }
            Paging.BindList(http.Request.Path);
            if (http.Request.Headers.ContainsKey(Idempotency.Header))
            {
                http.Request.EnableBuffering(); // the request's fingerprint covers the body exactly as sent
            }
            await next(http);
        });
        app.UseAuthentication();
        app.Use((http, next) => DashboardSessions.RequireCsrfAsync(http, () => next(http)));
        app.UseAuthorization();

        HealthApi.Map(app);
        if (options.Mode == HostMode.Worker)
        {
            return app; // workers serve health checks only
        }
        app.MapOpenApi("/openapi/v1.json").AllowAnonymous();
        app.MapScalarApiReference("/docs", o => o.WithTitle("Plugboard API").WithOpenApiRoutePattern("/openapi/v1.json")).AllowAnonymous();

        var v1 = app.MapGroup("/v1").RequireAuthorization().AddEndpointFilter<CommitOnSuccessFilter>();
        var workspace = v1.MapGroup("/workspaces/{workspaceId}").AddEndpointFilter<WorkspaceAccessFilter>();
        WorkspacesApi.Map(v1, workspace);
        MembersApi.Map(workspace);
        ApiKeysApi.Map(v1, workspace);
        CredentialsApi.Map(workspace);
        OAuthConnectApi.Map(app, workspace);
        ConnectorsApi.Map(workspace);
        TemplatesApi.Map(v1, workspace);
        AuditLogApi.Map(workspace);
        AnalyticsApi.Map(workspace);
        AdminApi.Map(v1);
        ExecutionsApi.Map(workspace);
        DocumentsApi.Map(workspace);
        BatchesApi.Map(workspace);
        SearchApi.Map(workspace);
        SyncsApi.Map(workspace);
        RecordsApi.Map(workspace);
        WebhooksApi.Map(workspace);
        WebhookReceiver.Map(app);
        ManifestsApi.Map(app, v1);
        JobsAdminApi.Map(v1);
        DashboardPages.Map(app);
        return app;
    }
}
