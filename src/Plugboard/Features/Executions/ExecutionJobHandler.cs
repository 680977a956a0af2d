using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Jobs;
using Plugboard.Security;

namespace Plugboard.Features.Executions;

/// <summary>
/// Runs one execution in a worker: loads the connector and decrypts its credential (service role), runs the manifest
/// through the engine, streams the redacted step log into the execution row, and writes the result, the connector's
/// error counters and the job's completion in one transaction — only while this worker still holds the job's lease,
/// so a worker presumed dead can never apply an execution's effects twice.
/// </summary>
public sealed class ExecutionJobHandler(Db db, KeyRing keys, ConnectorRunner runner, ManifestCache manifests, JobCancellations cancellations,
    ILogger<ExecutionJobHandler> logger) : IJobHandler
{
    public string Kind => ExecutionsApi.JobKind;

    public async Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
    {
        var payload = ExecutionJob.Read(job);
        if (payload.WorkspaceId != job.WorkspaceId)
        {
            // The row-level policy checked the job's workspace when it was enqueued, not its payload: a job that names
            // another workspace's execution is never run.
            throw new PermanentJobFailure("The job's payload names another workspace than the job itself.");
        }
        // Registered before the execution is marked running: a cancel requested from then on reaches this run at
        // once (the trigger notifies when cancel_requested_at is set on a running execution); one requested before
        // stops StartAsync from marking it running at all.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var cancelRegistration = cancellations.Register(ExecutionJob.CancelKey(payload.ExecutionId), cancel);
        var target = await StartAsync(payload, ct);
        if (target is null)
        {
            // Deleted, finished, or cancelled: nothing to run.
            await CompleteAloneAsync(context, payload, ct);
            return;
        }

        // A test run's draft is parsed for this run only; saved manifests are cached by connector row version.
        var parsed = target.ManifestVersion is { } version ? manifests.Get(version, target.Manifest) : ManifestParser.Parse(JsonNode.Parse(target.Manifest));
        var started = Stopwatch.GetTimestamp();
        RunResult result;
        var observer = new StepLogWriter(db, payload.WorkspaceId, payload.ExecutionId, logger);
        try
        {
            if (parsed.Manifest is null)
            {
                result = new RunResult(RunStatus.Failed, null, "The connector's manifest is invalid: " + string.Join("; ", parsed.Issues.Select(i => $"{i.Pointer}: {i.Message}")), []);
            }
            else if (Credentials(target, payload) is not { } credentials)
            {
                result = new RunResult(RunStatus.Failed, null, ConnectorCredentials.Unreadable, []);
            }
            else
            {
                var store = target.CredentialId is { } id ? new DbCredentialStore(db, keys, payload.WorkspaceId, id) : null;
                var request = new RunRequest(JsonNode.Parse(target.Inputs) as JsonObject ?? [], JsonNode.Parse(target.Config) as JsonObject ?? [], credentials, store)
                {
                    ExecutionId = payload.ExecutionId.ToString(),
                };
                result = await runner.RunAsync(parsed.Manifest, request, observer, cancel.Token);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            // Out of attempts (the database kept failing under us): the execution ends as failed rather than staying running.
            logger.LogError("Execution {ExecutionId} failed on its last attempt: {ExceptionType}", payload.ExecutionId, e.GetType().Name);
            result = new RunResult(RunStatus.Failed, null, $"The execution could not be completed after {job.Attempt} attempts ({e.GetType().Name}).", []);
        }
        finally
        {
            await observer.DisposeAsync(); // the live log stops here; the completion below writes the whole log
        }
        ct.ThrowIfCancellationRequested(); // lease lost or shutting down: another worker will take it over

        var durationMs = (int)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var output = result.Output is null ? null : Jsonb.Text(result.Output);
        var truncated = false;
        var outputBytes = output is null ? 0 : System.Text.Encoding.UTF8.GetByteCount(output);
        if (outputBytes > runner.Options.MaxOutputBytes)
        {
            // Too large to store: nothing of it is kept, and the execution says why rather than half an answer.
            result = result with
            {
                Status = RunStatus.Failed,
                Error = $"The run's output is {outputBytes} bytes of JSON, more than the limit of {runner.Options.MaxOutputBytes}: it was not stored. " +
                        "Narrow the manifest's output (or extract fewer fields).",
            };
            output = null;
            truncated = true;
        }
        var status = result.Status switch
        {
            RunStatus.Succeeded => "succeeded",
            RunStatus.Cancelled => "cancelled",
            RunStatus.TimedOut => "timed_out",
            _ => "failed",
        };
        var steps = Jsonb.Text(new JsonArray([.. result.Log.Select(StepLogWriter.ToJson)]));
        bool completed;
        try
        {
            completed = await CompleteAsync(context, payload, status, output, truncated, result.Error, steps, durationMs, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            // The result itself cannot be stored (on every attempt): the execution still ends, as failed, rather than
            // staying "running" behind a dead job.
            logger.LogError("Execution {ExecutionId}: its result could not be stored on the last attempt ({ExceptionType}); ending it as failed", payload.ExecutionId, e.GetType().Name);
            status = "failed";
            completed = await CompleteAsync(context, payload, status, null, false,
                $"The execution ran, but its result could not be stored after {job.Attempt} attempts ({e.GetType().Name}); its output and step log are not kept.",
                null, durationMs, ct);
        }
        if (!completed)
        {
            logger.LogWarning("Execution {ExecutionId}: lease lost before completion; leaving it to the worker that holds it", payload.ExecutionId);
            return;
        }
        logger.LogInformation("Execution {ExecutionId} {Status} in {DurationMs} ms", payload.ExecutionId, status, durationMs);
    }

    /// <summary>Result, connector counters and job completion in one statement, applied only while this worker holds the
    /// lease. A null <paramref name="steps"/> keeps the live step log as it is.</summary>
    private async Task<bool> CompleteAsync(JobContext context, ExecutionJob.Payload payload, string status, string? output, bool truncated, string? error,
        string? steps, int durationMs, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        return await context.CompleteWithAsync(connection,
        [
            """
            UPDATE connector_executions
               SET status = @status, output = @output::jsonb, output_truncated = @truncated, error = @error,
                   steps_log = coalesce(@steps::jsonb, steps_log), finished_at = now(), duration_ms = @durationMs
             WHERE workspace_id = @workspaceId AND id = @executionId AND {lease_held}
            """,
            """
            UPDATE connectors
               SET error_count = CASE WHEN @status = 'succeeded' THEN 0 ELSE error_count + 1 END,
                   last_error = CASE WHEN @status = 'succeeded' THEN NULL ELSE @error END,
                   last_error_at = CASE WHEN @status = 'succeeded' THEN NULL ELSE now() END
             WHERE workspace_id = @workspaceId AND id = @connectorId AND @status <> 'cancelled' AND NOT @test AND {lease_held}
               AND (@status <> 'succeeded' OR error_count <> 0 OR last_error IS NOT NULL)
            """,
        ],
        new
        {
            status,
            output,
            truncated,
            error = error?.Replace('\0', '\uFFFD'), // text columns refuse NUL, as jsonb does
            steps,
            durationMs,
            workspaceId = payload.WorkspaceId,
            executionId = payload.ExecutionId,
            connectorId = payload.ConnectorId,
            test = payload.Test,
        }, ct);
    }

    private Dictionary<string, string>? Credentials(Target target, ExecutionJob.Payload payload) =>
        ConnectorCredentials.Decrypt(keys, payload.WorkspaceId, target.CredentialId, target.EncryptedPayload, logger, $"Execution {payload.ExecutionId}");

    /// <summary>Completes the job without a run; a cancel requested while no worker held it is settled here.</summary>
    private async Task CompleteAloneAsync(JobContext context, ExecutionJob.Payload payload, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (await context.CompleteAsync(connection, tx, ct))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE connector_executions SET status = 'cancelled', finished_at = now() WHERE workspace_id = @WorkspaceId AND id = @ExecutionId AND status IN ('queued', 'running')",
                payload, tx, cancellationToken: ct));
            await tx.CommitAsync(ct);
        }
    }

    /// <summary>Marks the execution running (a re-claimed one starts over) and loads what it needs, in one statement.</summary>
    private async Task<Target?> StartAsync(ExecutionJob.Payload payload, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        // One implicit transaction whose commit does not wait for the WAL flush: losing a "running" mark in a crash is harmless.
        await using var results = await connection.QueryMultipleAsync(new CommandDefinition(
            JobQueue.NoFlushOnCommit + ";\n" +
            """
            WITH e AS (
                UPDATE connector_executions
                   SET status = 'running', started_at = coalesce(started_at, now()), attempts = attempts + 1
                 WHERE workspace_id = @WorkspaceId AND id = @ExecutionId AND status IN ('queued', 'running') AND cancel_requested_at IS NULL
             RETURNING workspace_id, connector_id, status, inputs, manifest AS test_manifest)
            SELECT e.status, e.inputs::text AS inputs, coalesce(e.test_manifest, c.manifest)::text AS manifest,
                   CASE WHEN e.test_manifest IS NULL THEN c.id::text || ':' || c.row_version END AS manifest_version,
                   c.config::text AS config, c.credential_id, k.encrypted_payload
              FROM e
              JOIN connectors c ON c.workspace_id = e.workspace_id AND c.id = e.connector_id
              LEFT JOIN workspace_api_credentials k ON k.workspace_id = c.workspace_id AND k.id = c.credential_id
            """, payload, cancellationToken: ct));
        await results.ReadAsync();
        return await results.ReadSingleOrDefaultAsync<Target>();
    }

    private sealed record Target(string Status, string Inputs, string Manifest, string? ManifestVersion, string Config, Guid? CredentialId, string? EncryptedPayload);
}
