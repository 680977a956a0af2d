using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;

namespace Plugboard.Jobs;

public static class JobsServiceCollectionExtensions
{
    /// <summary>The job queue (always, so requests can enqueue) and, when <paramref name="runWorkers"/>, the worker.</summary>
    public static IServiceCollection AddPlugboardJobs(this IServiceCollection services, IConfiguration configuration, bool runWorkers)
    {
        services.TryAddSingleton<JobQueue>();
        services.TryAddSingleton<JobCancellations>();
        services.TryAddSingleton(JobWorkerOptions.FromConfiguration(configuration));
        if (runWorkers)
        {
            services.AddHostedService<JobWorker>();
        }
        services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(JobMetrics.MeterName));
        return services;
    }

    /// <summary>Registers the handler of one job kind (a singleton).</summary>
    public static IServiceCollection AddJobHandler<THandler>(this IServiceCollection services) where THandler : class, IJobHandler =>
        services.AddSingleton<IJobHandler, THandler>();
}
