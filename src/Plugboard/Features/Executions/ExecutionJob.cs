using Plugboard.Jobs;

namespace Plugboard.Features.Executions;

/// <summary>The job that carries one execution: which row to run, limited per connector by the claim itself.</summary>
public static class ExecutionJob
{
    /// <param name="Test">A test run of a draft manifest: its outcome does not count as the connector's (error count, last error).</param>
    public sealed record Payload(string WorkspaceId, Guid ConnectorId, Guid ExecutionId, bool Test = false);

    public static JobRequest Request(string workspaceId, Guid connectorId, Guid executionId, int maxConcurrency, bool test = false) => new(
        Kind: ExecutionsApi.JobKind,
        WorkspaceId: workspaceId,
        Payload: new Payload(workspaceId, connectorId, executionId, test),
        MaxAttempts: 5,
        ConcurrencyKey: $"connector:{connectorId}",
        ConcurrencyLimit: maxConcurrency,
        Id: executionId);

    public static Payload Read(ClaimedJob job) => job.PayloadAs<Payload>();

    /// <summary>The key a cancel request notifies (the trigger on connector_executions builds the same text).</summary>
    public static string CancelKey(Guid executionId) => $"execution:{executionId:D}";
}
