using System.Text.Json;
using Plugboard.Http;

namespace Plugboard.Features.Executions;

public sealed record CreateExecutionRequest(JsonElement? Inputs = null);

/// <summary>A draft manifest (a JSON object, as a connector stores it) and the inputs to run it with.</summary>
public sealed record TestRunRequest(JsonElement Manifest, JsonElement? Inputs = null);

public sealed record Execution(
    Guid Id, Guid ConnectorId, string Status, string Trigger, JsonElement Inputs, JsonElement? Output, bool OutputTruncated, string? Error,
    DateTime? StartedAt, DateTime? FinishedAt, int? DurationMs, int Attempts, DateTime? CancelRequestedAt, DateTime CreatedAt, DateTime UpdatedAt,
    JsonElement? Steps = null);

internal record ExecutionRow
{
    public Guid Id { get; init; }
    public Guid ConnectorId { get; init; }
    public string Status { get; init; } = "";
    public string Trigger { get; init; } = "";
    public string Inputs { get; init; } = "{}";
    public string? Output { get; init; }
    public bool OutputTruncated { get; init; }
    public string? Error { get; init; }
    public string StepsLog { get; init; } = "[]";
    public DateTime? StartedAt { get; init; }
    public DateTime? FinishedAt { get; init; }
    public int? DurationMs { get; init; }
    public int Attempts { get; init; }
    public DateTime? CancelRequestedAt { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

    public const string Columns =
        """
        id, connector_id, status, trigger, inputs::text AS inputs, output::text AS output, output_truncated, error, steps_log::text AS steps_log,
        started_at, finished_at, duration_ms, attempts, cancel_requested_at, created_at, updated_at
        """;

    public Execution ToExecution(bool withSteps) => new(Id, ConnectorId, Status, Trigger, JsonColumns.Element(Inputs), JsonColumns.NullableElement(Output),
        OutputTruncated, Error, StartedAt, FinishedAt, DurationMs, Attempts, CancelRequestedAt, CreatedAt, UpdatedAt, withSteps ? JsonColumns.Element(StepsLog) : null);

    public static bool IsFinished(string status) => status is "succeeded" or "failed" or "cancelled" or "timed_out";
}

/// <summary>An execution with the names its dashboard page shows, read in the same statement.</summary>
internal sealed record NamedExecutionRow : ExecutionRow
{
    public string? WorkspaceName { get; init; }
    public string ConnectorName { get; init; } = "";
}
