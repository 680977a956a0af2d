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
