using Plugboard.Data;
using Plugboard.Http;
using Plugboard.Jobs;

namespace Plugboard.Features.Jobs;

/// <summary>
/// Operators' view of the job queue: stats, dead letters, retry and discard. Platform admins only. The API role
/// cannot read jobs, so after the role check these read and change the queue on the service role.
/// </summary>
public static class JobsAdminApi
{
    public static void Map(RouteGroupBuilder v1)
    {
        var jobs = v1.MapGroup("/admin/jobs").WithTags("Admin");
        jobs.MapGet("", Stats).Produces<JobStats>();
        jobs.MapGet("/dead", ListDead).Produces<Page<DeadJob>>();
        jobs.MapPost("/{jobId:guid}/retry", Retry).Produces(204);
        jobs.MapDelete("/{jobId:guid}", Discard).Produces(204);
        v1.MapGet("/admin/workers", Workers).WithTags("Admin").Produces<IReadOnlyList<WorkerHeartbeat>>();
    }

    public sealed record WorkerHeartbeat
    {
        public required string WorkerId { get; init; }
        public required string Host { get; init; }
        public int Pid { get; init; }
        public string[] Kinds { get; init; } = [];
        public int Slots { get; init; }
        public int Running { get; init; }
        public DateTime StartedAt { get; init; }
        public DateTime BeatAt { get; init; }
        public bool Live { get; init; }
    }

    /// <summary>Every worker process that has beaten recently or not cleanly stopped, newest beat first; live ones beat within a minute.</summary>
    internal static async Task<IResult> Workers(RequestDb db, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "see the workers");
        return TypedResults.Ok(await db.QueryAsync<WorkerHeartbeat>(
            """
            SELECT worker_id, host, pid, kinds, slots, running, started_at, beat_at, beat_at > now() - @within AS live
              FROM worker_heartbeats ORDER BY beat_at DESC LIMIT 500
            """, new { within = Health.HealthApi.LiveWithin }, ct));
    }

    internal static async Task<IResult> Stats(RequestDb db, JobQueue queue, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "see the job queue");
        return TypedResults.Ok(await queue.StatsAsync(ct));
    }

    internal static async Task<IResult> ListDead(RequestDb db, JobQueue queue, int? limit, string? cursor, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "list dead jobs");
        var take = Paging.Limit(limit);
        var rows = await queue.ListDeadAsync(Paging.AfterId(cursor), take + 1, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, j => j.Id));
    }

    private static async Task<IResult> Retry(Guid jobId, RequestDb db, JobQueue queue, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "retry dead jobs");
        Check(await queue.RetryDeadAsync(jobId, ct), "Only dead jobs can be retried.");
        await Audit.WriteAsync(db, "job.retried", "job", jobId.ToString(), null, ct, platform: true);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> Discard(Guid jobId, RequestDb db, JobQueue queue, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "discard dead jobs");
        Check(await queue.DiscardAsync(jobId, ct), "Only dead or cancelled jobs can be discarded.");
        await Audit.WriteAsync(db, "job.discarded", "job", jobId.ToString(), null, ct, platform: true);
        return TypedResults.NoContent();
    }

    private static void Check(OperatorOutcome outcome, string wrongState)
    {
        switch (outcome)
        {
            case OperatorOutcome.NotFound:
                throw Problems.NotFound("The job");
            case OperatorOutcome.WrongState:
                throw Problems.Conflict(wrongState);
        }
    }
}
