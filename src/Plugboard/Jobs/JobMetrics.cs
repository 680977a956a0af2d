using System.Diagnostics.Metrics;

namespace Plugboard.Jobs;

/// <summary>Counters of the job queue, exported with the other OpenTelemetry metrics.</summary>
public static class JobMetrics
{
    public const string MeterName = "Plugboard.Jobs";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Counter<long> Claimed = Meter.CreateCounter<long>("plugboard.jobs.claimed", "{job}", "Jobs claimed by workers (each attempt counts).");
    public static readonly Counter<long> Completed = Meter.CreateCounter<long>("plugboard.jobs.completed", "{job}", "Jobs completed and removed from the queue.");
    public static readonly Counter<long> Failed = Meter.CreateCounter<long>("plugboard.jobs.failed", "{job}", "Failed attempts (retried or dead).");
    public static readonly Counter<long> Dead = Meter.CreateCounter<long>("plugboard.jobs.dead", "{job}", "Jobs that went dead (out of attempts or failed permanently).");

    private static long _inFlight;

    static JobMetrics() => Meter.CreateObservableGauge("plugboard.jobs.in_flight", () => Interlocked.Read(ref _inFlight), "{job}", "Jobs running in this process.");

    internal static void AddInFlight(long delta) => Interlocked.Add(ref _inFlight, delta);
}
