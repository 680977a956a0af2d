using System.Text.Json.Nodes;

namespace Plugboard.Engine.Running;

// The contract between the engine (pure library) and its hosts: the worker that runs executions, the
// `plugboard run` CLI, and tests. The engine owns no database; hosts supply credentials and persistence.

public enum RunStatus
{
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// <summary>What one run gets: inputs, the installer's config, and the decrypted credential fields.</summary>
public sealed record RunRequest(
    JsonObject Inputs,
    JsonObject Config,
    IReadOnlyDictionary<string, string> Credentials,
    ICredentialStore? CredentialStore = null)
{
    /// <summary>The execution's id, stable across attempts (a worker crash re-runs the same id): templates see it as
    /// <c>{{ execution.id }}</c>.</summary>
    public string? ExecutionId { get; init; }

    /// <summary>Set for a sync: the run maps its streams' records instead of rendering the output.</summary>
    public SyncRequest? Sync { get; init; }
}

/// <summary>What a sync starts from: a full refresh (steps see <c>sync.full_refresh</c> true and no cursors) or each
/// stream's stored cursor.</summary>
public sealed record SyncRequest(bool FullRefresh, IReadOnlyDictionary<string, string> Cursors)
{
    /// <summary>
    /// Receives a stream's records while its pages are still being fetched, at least <see cref="CheckpointRecords"/> at
    /// a time, for the host to commit (with the cursor, for an ordered stream) before the run goes on. Only streams
    /// whose records come from the manifest's last step, a paginated one, are checkpointed: no later step can change
    /// what their mapping reads. Null: every record comes with the result.
    /// </summary>
    public Func<StreamRecords, CancellationToken, Task>? Checkpoint { get; init; }

    public int CheckpointRecords { get; init; } = 1000;
}

/// <summary>A record mapped to a document. <paramref name="Cursor"/> is the record's cursor field, when the stream has one.</summary>
public sealed record SyncedRecord(string ExternalId, string Title, string? Url, string ContentType, string Content, string MetadataJson, string? Cursor)
{
    /// <summary>Set when the document is a file to download (<see cref="Content"/> is then empty).</summary>
    public string? ContentUrl { get; init; }
}

/// <summary>A finished download: the status, the media type the server declared, and the bytes written; or what went wrong
/// (redacted). <see cref="Permanent"/>: trying again cannot help (a 4xx other than 408/429, a file over the limit).</summary>
public sealed record DownloadResult(int? Status, string? MediaType, long Bytes, string? Error)
{
    public bool Permanent { get; init; }
}

/// <summary>One stream's records, and the cursor they advance it to (the greatest seen, never below the stored one).
/// A checkpoint carries a cursor only for an ordered stream.</summary>
public sealed record StreamRecords(string Name, IReadOnlyList<SyncedRecord> Records, string? Cursor)
{
    /// <summary>In a result: the external ids of the stream's records already handed to checkpoints (not in <see cref="Records"/>).</summary>
    public IReadOnlyList<string> CheckpointedIds { get; init; } = [];
}

/// <summary>
/// A sync's outcome. <paramref name="Complete"/> is true only when the run succeeded and no pagination stopped at its
/// page limit: only then may records it did not return be taken as deleted.
/// </summary>
public sealed record SyncRunResult(RunStatus Status, string? Error, IReadOnlyList<StepLogEntry> Log, IReadOnlyList<StreamRecords> Streams, bool Complete)
{
    public int Requests => Log.Count(e => !e.Skipped);

    public int Pages => Log.Count(e => e.Status is >= 200 and < 300);
}

/// <summary>
/// Persists credential changes made during a run (OAuth2 access/refresh tokens). The host guarantees one refresh at a
/// time per credential across all processes: <paramref name="refresh"/> is called under that lock with the freshest
/// stored fields and returns the fields to store (or the same ones if another process refreshed meanwhile).
/// </summary>
public interface ICredentialStore
{
    Task<IReadOnlyDictionary<string, string>> UpdateAsync(
        Func<IReadOnlyDictionary<string, string>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> refresh,
        CancellationToken ct);
}

/// <summary>One HTTP request the engine made (or a skipped step), already redacted: no secret value appears in any field.</summary>
public sealed record StepLogEntry(
    string StepId,
    string Method,
    string Url,
    int? Status,
    long DurationMs,
    long Bytes,
    int Attempt,
    string? ResponseBody,
    string? Error,
    int? Page = null,
    int? Item = null,
    bool Skipped = false,
    DateTimeOffset? At = null);

/// <summary>Receives each log entry as it happens (for live streams and persistence).</summary>
public interface IRunObserver
{
    ValueTask OnStepAsync(StepLogEntry entry, CancellationToken ct);
}

public sealed record RunResult(RunStatus Status, JsonNode? Output, string? Error, IReadOnlyList<StepLogEntry> Log);

public sealed record RunnerOptions
{
    public TimeSpan ExecutionTimeout { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan DefaultStepTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public long MaxResponseBytes { get; init; } = 10 * 1024 * 1024;
    public int LoggedBodyChars { get; init; } = 2048;
    public int DefaultMaxAttempts { get; init; } = 4;
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);
    public int MaxPages { get; init; } = 1000;
    public int MaxRedirects { get; init; } = 5;
    public int DefaultForEachConcurrency { get; init; } = 4;
    public int MaxTemplateOutputChars { get; init; } = 1024 * 1024;

    /// <summary>All response bodies one run may read together (pages and fan-out included): what a run can hold in memory.</summary>
    public long MaxRunResponseBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>The largest output (as JSON) a host stores for a run; a larger one is dropped and the run marked truncated.</summary>
    public int MaxOutputBytes { get; init; } = 4 * 1024 * 1024;
}
