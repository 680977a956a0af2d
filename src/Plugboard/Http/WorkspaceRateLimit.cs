using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

namespace Plugboard.Http;

/// <summary>
/// A token bucket per workspace for work-creating endpoints (executions), so one busy workspace cannot flood the
/// queue; the job claim is fair across workspaces as well. Answers 429 with Retry-After and a problem body.
/// </summary>
public static class WorkspaceRateLimit
{
    public const string Policy = "workspace";

    public static void Add(IServiceCollection services, IConfiguration configuration)
    {
        var perSecond = int.TryParse(configuration["PLUGBOARD_WORKSPACE_RATE_LIMIT"], out var rate) && rate > 0 ? rate : 50;
        var burst = int.TryParse(configuration["PLUGBOARD_WORKSPACE_RATE_BURST"], out var b) && b > 0 ? b : perSecond * 4;
        services.AddRateLimiter(options =>
        {
            options.AddPolicy(Policy, http => RateLimitPartition.GetTokenBucketLimiter(
                http.Request.RouteValues["workspaceId"] as string ?? "",
                _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = burst,
                    TokensPerPeriod = perSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                }));
            options.OnRejected = async (context, ct) =>
            {
                var seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) : 1;
                var http = context.HttpContext;
                http.Response.StatusCode = 429;
                http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = http,
                    ProblemDetails = new Microsoft.AspNetCore.Mvc.ProblemDetails
                    {
                        Status = 429,
                        Type = Problems.TypePrefix + "too-many-requests",
                        Title = "Too many requests",
                        Detail = $"This workspace is starting executions faster than {perSecond}/s. Retry after {seconds} s.",
                    },
                });
            };
        });
    }
}
