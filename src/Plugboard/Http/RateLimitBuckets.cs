using System.Globalization;
using System.Threading.RateLimiting;

namespace Plugboard.Http;

/// <summary>
/// A token bucket per key. The registered instance is per workspace, for work-creating endpoints (executions), so one
/// busy workspace cannot flood the queue; the job claim is fair across workspaces as well. The handler takes a token
/// only after the caller has entered the workspace (a member with the role to run), so nobody else can spend a
/// workspace's budget. Webhook endpoints have buckets of their own (per connector). The buckets live in each API
/// process: behind a load balancer with N API processes a key may go up to N × the rate.
/// </summary>
public sealed class RateLimitBuckets : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;

    private readonly string _subject;

    /// <param name="subject">Who is going too fast, for the problem's detail: "This workspace is starting executions".</param>
    public RateLimitBuckets(int perSecond, int burst, string subject = "This workspace is starting executions")
    {
        PerSecond = perSecond;
        _subject = subject;
        _limiter = PartitionedRateLimiter.Create<string, string>(workspaceId => RateLimitPartition.GetTokenBucketLimiter(workspaceId,
            _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = burst,
                TokensPerPeriod = perSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
    }

    public int PerSecond { get; }

    public static void Add(IServiceCollection services, IConfiguration configuration) => services.AddSingleton(FromConfiguration(configuration));

    /// <summary>PLUGBOARD_WORKSPACE_RATE_LIMIT (per second, default 50) and PLUGBOARD_WORKSPACE_RATE_BURST (default 4 × the rate).</summary>
    public static RateLimitBuckets FromConfiguration(IConfiguration configuration)
    {
        var perSecond = Hosting.Settings.Int(configuration, "PLUGBOARD_WORKSPACE_RATE_LIMIT", 50, 1, 1_000_000);
        var burst = Hosting.Settings.Int(configuration, "PLUGBOARD_WORKSPACE_RATE_BURST", perSecond * 4, 1, 1_000_000);
        return new RateLimitBuckets(perSecond, burst);
    }

    /// <summary>Takes one token of the key's bucket (the entered workspace's), or answers 429 with Retry-After.</summary>
    public void Take(HttpContext http, string key)
    {
        using var lease = _limiter.AttemptAcquire(key);
        if (lease.IsAcquired)
        {
            return;
        }
        var seconds = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) : 1;
        throw new ProblemException(429, "too-many-requests", "Too many requests",
            $"{_subject} faster than {PerSecond}/s. Retry after {seconds} s.",
            new Dictionary<string, object?> { ["retry_after"] = seconds })
        {
            Headers = { ["Retry-After"] = seconds.ToString(CultureInfo.InvariantCulture) },
        };
    }

    public void Dispose() => _limiter.Dispose();
}
