using System.Text.Json;

namespace Plugboard.Jobs;

/// <summary>
/// A job to enqueue. <paramref name="WorkspaceId"/> is null only for platform work. Jobs that share a
/// <paramref name="ConcurrencyKey"/> never run more than <paramref name="ConcurrencyLimit"/> at a time. The payload is
/// serialized as JSON and should carry ids, never secrets.
/// </summary>
public sealed record JobRequest(
    string Kind,
    string? WorkspaceId,
    object? Payload = null,
    short Priority = 0,
    DateTimeOffset? RunAt = null,
    int MaxAttempts = 10,
    string? ConcurrencyKey = null,
    int ConcurrencyLimit = 1,
    Guid? Id = null);

/// <summary>
/// A job this worker holds under a lease. <see cref="Attempt"/> is the lease's fencing token: completing, failing
/// or renewing succeeds only while the row still carries this worker and this attempt.
/// </summary>
public sealed record ClaimedJob(
    Guid Id,
    string Kind,
    string? WorkspaceId,
    JsonElement Payload,
    string? ConcurrencyKey,
    short Priority,
    int Attempt,
    int MaxAttempts,
    string WorkerId,
    DateTime LeaseExpiresAt,
    DateTime CreatedAt)
{
    public T PayloadAs<T>() => Payload.Deserialize<T>(JobQueue.PayloadJson)
        ?? throw new PermanentJobFailure($"The payload of job {Id} ({Kind}) is empty.");
}

/// <summary>Thrown by a handler when retrying cannot help: the job goes dead at once.</summary>
public sealed class PermanentJobFailure(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Thrown by a handler to retry after a given delay (e.g. an upstream Retry-After) instead of the backoff.</summary>
public sealed class RetryJobLater(TimeSpan after, string message, Exception? inner = null) : Exception(message, inner)
{
    public TimeSpan After { get; } = after;
}

public sealed record JobKindStats(string Kind, long Queued, long Scheduled, long Running, long Retrying, long Dead, long Cancelled, double? OldestQueuedSeconds);

/// <summary>
/// The queue at a glance. Queued: due and never tried; scheduled: not yet due and never tried; retrying: waiting
/// for another attempt; running: held under a lease; dead: out of attempts or failed permanently.
/// </summary>
public sealed record JobStats(long Queued, long Scheduled, long Running, long Retrying, long Dead, long Cancelled, double? OldestQueuedSeconds, IReadOnlyList<JobKindStats> Kinds);

public sealed record DeadJob(Guid Id, string Kind, string? WorkspaceId, string? ConcurrencyKey, int Attempts, int MaxAttempts, string? LastError, DateTime CreatedAt, DateTime? FinishedAt);
