using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Http;
using Plugboard.Jobs;

namespace Plugboard.Features.Executions;

/// <summary>
/// Runs connectors on demand: an execution row and its job are written in one transaction (202 Accepted), workers run
/// it, and the API shows status, output and a redacted step log — also live, as server-sent events.
/// </summary>
public static class ExecutionsApi
{
    public const string JobKind = "execution";
    public static readonly string[] Statuses = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"];
    public static readonly string[] Triggers = ["manual", "api", "schedule", "webhook", "test"];

    public static void Map(RouteGroupBuilder workspace)
    {
        var executions = workspace.MapGroup("/connectors/{connectorId:guid}/executions").WithTags("Executions");
        executions.MapPost("", Create).Produces<Execution>(202);
        workspace.MapPost("/connectors/{connectorId:guid}/test-runs", TestRun).WithTags("Executions").Produces<Execution>(202);
        executions.MapGet("", async (Guid connectorId, RequestDb db, string? status, string? trigger, DateTime? since, DateTime? until, int? limit, string? cursor, CancellationToken ct) =>
        {
            if (!await db.QuerySingleOrDefaultAsync<bool>("SELECT EXISTS (SELECT 1 FROM connectors WHERE id = @connectorId)", new { connectorId }, ct))
            {
                throw Problems.NotFound("The connector");
            }
            return await ListAsync(db, connectorId, status, trigger, since, until, limit, cursor, ct);
        }).Produces<Page<Execution>>();
        executions.MapGet("/{executionId:guid}", Get).Produces<Execution>();
        executions.MapPost("/{executionId:guid}/cancel", Cancel).Produces<Execution>(202);
        executions.MapGet("/{executionId:guid}/stream", Stream).Produces(200, contentType: "text/event-stream");
        workspace.MapGet("/executions", ([FromQuery(Name = "connector_id")] Guid? connectorId, RequestDb db, string? status, string? trigger, DateTime? since, DateTime? until, int? limit, string? cursor, CancellationToken ct) =>
            ListAsync(db, connectorId, status, trigger, since, until, limit, cursor, ct)).WithTags("Executions").Produces<Page<Execution>>();
    }

    private static async Task<IResult> Create(Guid connectorId, CreateExecutionRequest? body, RequestDb db, RateLimitBuckets rateLimit, ManifestCache manifests,
        HttpContext http, CancellationToken ct)
    {
        db.RequireRole("member", "run connectors");
        rateLimit.Take(http, db.WorkspaceId!); // after the workspace filter let the caller in: only its members spend its budget
        var connector = await db.QuerySingleOrDefaultAsync<ConnectorToRun>(
            "SELECT manifest::text AS manifest, is_active, max_concurrency, id::text || ':' || row_version AS manifest_version FROM connectors WHERE id = @connectorId", new { connectorId }, ct)
            ?? throw Problems.NotFound("The connector");
        if (!connector.IsActive)
        {
            throw new ProblemException(409, "connector-inactive", "Connector inactive", "The connector is paused: set is_active to true to run it.");
        }
        var inputs = ExecutionInputs.Check(manifests.Get(connector.ManifestVersion, connector.Manifest), body?.Inputs);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var id = Guid.CreateVersion7();
        // The execution and its job in one statement: both or neither, in one round trip.
        var parameters = new DynamicParameters(new { id, connectorId, inputs = inputs.ToJsonString() });
        JobQueue.AddInsertParameters(parameters, ExecutionJob.Request(db.WorkspaceId!, connectorId, id, connector.MaxConcurrency));
        var row = await db.QuerySingleOrDefaultAsync<ExecutionRow>(
            $"""
            WITH job AS ({JobQueue.InsertOneSql})
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, trigger, inputs, created_by)
            VALUES (app_workspace_id(), @id, @connectorId, 'queued', 'api', @inputs::jsonb, app_user_id())
            RETURNING {ExecutionRow.Columns}
            """, parameters, ct);
        var location = $"/v1/workspaces/{db.WorkspaceId}/connectors/{connectorId}/executions/{id}";
        return await Idempotency.AcceptedAsync(http, db, location, row!.ToExecution(withSteps: false), ct);
    }

    /// <summary>
    /// A test run: a draft manifest (the studio's) run once with the connector's credential and config, as an execution
    /// with trigger <c>test</c> whose steps are followed like any other; the connector's own manifest is not changed and
    /// its error count is not touched. Admins only, as saving the manifest is: the draft decides where the credential goes.
    /// </summary>
    private static async Task<IResult> TestRun(Guid connectorId, TestRunRequest body, RequestDb db, RateLimitBuckets rateLimit, HttpContext http, CancellationToken ct)
    {
        var connector = await db.QuerySingleOrDefaultAsync<ConnectorToTest>(
            "SELECT max_concurrency, config::text AS config FROM connectors WHERE id = @connectorId", new { connectorId }, ct)
            ?? throw Problems.NotFound("The connector");
        db.RequireRole("admin", "test-run a draft manifest with a connector's credential");
        rateLimit.Take(http, db.WorkspaceId!);
        var manifest = Connectors.ConnectorsApi.ValidManifest(body.Manifest);
        Connectors.ConnectorsApi.CheckConfig(manifest, connector.Config);
        var inputs = ExecutionInputs.Check(ManifestParser.Parse(JsonNode.Parse(manifest)), body.Inputs);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var id = Guid.CreateVersion7();
        var parameters = new DynamicParameters(new { id, connectorId, inputs = inputs.ToJsonString(), manifest });
        JobQueue.AddInsertParameters(parameters, ExecutionJob.Request(db.WorkspaceId!, connectorId, id, connector.MaxConcurrency, test: true));
        var row = await db.QuerySingleOrDefaultAsync<ExecutionRow>(
            $"""
            WITH job AS ({JobQueue.InsertOneSql})
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, trigger, inputs, manifest, created_by)
            VALUES (app_workspace_id(), @id, @connectorId, 'queued', 'test', @inputs::jsonb, @manifest::jsonb, app_user_id())
            RETURNING {ExecutionRow.Columns}
            """, parameters, ct);
        var location = $"/v1/workspaces/{db.WorkspaceId}/connectors/{connectorId}/executions/{id}";
        return await Idempotency.AcceptedAsync(http, db, location, row!.ToExecution(withSteps: false), ct);
    }

    internal static async Task<IResult> ListAsync(RequestDb db, Guid? connectorId, string? status, string? trigger, DateTime? since, DateTime? until, int? limit, string? cursor, CancellationToken ct)
    {
        if (status is not null && !Statuses.Contains(status))
        {
            throw Problems.BadRequest($"status must be one of: {string.Join(", ", Statuses)}.");
        }
        if (trigger is not null && !Triggers.Contains(trigger))
        {
            throw Problems.BadRequest($"trigger must be one of: {string.Join(", ", Triggers)}.");
        }
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<ExecutionRow>(
            $"""
            SELECT {ExecutionRow.Columns} FROM connector_executions
             WHERE (@connectorId::uuid IS NULL OR connector_id = @connectorId)
               AND (@status::text IS NULL OR status = @status)
               AND (@trigger::text IS NULL OR trigger = @trigger)
               AND (@since::timestamptz IS NULL OR created_at >= @since)
               AND (@until::timestamptz IS NULL OR created_at < @until)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new { connectorId, status, trigger, since = since?.ToUniversalTime(), until = until?.ToUniversalTime(), after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Execution>(page.Items.Select(r => r.ToExecution(withSteps: false)).ToList(), page.NextCursor));
    }

    internal static async Task<IResult> Get(Guid connectorId, Guid executionId, RequestDb db, CancellationToken ct) =>
        TypedResults.Ok((await FindAsync(db, connectorId, executionId, ct)).ToExecution(withSteps: true));

    /// <summary>For the run page: the execution (with its steps) and the workspace's and connector's names, in one round trip.</summary>
    internal static async Task<(Execution Execution, string? WorkspaceName, string ConnectorName)> GetNamedAsync(Guid connectorId, Guid executionId, RequestDb db, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<NamedExecutionRow>(
            $"""
            SELECT {ExecutionRow.Columns},
                   (SELECT name FROM workspaces WHERE id = app_workspace_id()) AS workspace_name,
                   (SELECT name FROM connectors WHERE id = @connectorId) AS connector_name
              FROM connector_executions WHERE id = @executionId AND connector_id = @connectorId
            """, new { connectorId, executionId }, ct) ?? throw Problems.NotFound("The execution");
        return (row.ToExecution(withSteps: true), row.WorkspaceName, row.ConnectorName);
    }

    private static async Task<ExecutionRow> FindAsync(RequestDb db, Guid connectorId, Guid executionId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<ExecutionRow>(
            $"SELECT {ExecutionRow.Columns} FROM connector_executions WHERE id = @executionId AND connector_id = @connectorId", new { connectorId, executionId }, ct)
        ?? throw Problems.NotFound("The execution");

    /// <summary>A queued execution is cancelled at once; a running one stops between requests and aborts the one in flight.</summary>
    private static async Task<IResult> Cancel(Guid connectorId, Guid executionId, RequestDb db, CancellationToken ct)
    {
        var existing = await FindAsync(db, connectorId, executionId, ct);
        db.RequireRole("member", "cancel executions");
        if (ExecutionRow.IsFinished(existing.Status))
        {
            throw new ProblemException(409, "execution-finished", "Execution finished", $"The execution already ended ({existing.Status}).");
        }
        var row = await db.QuerySingleOrDefaultAsync<ExecutionRow>(
            $"""
            UPDATE connector_executions
               SET cancel_requested_at = coalesce(cancel_requested_at, now()),
                   status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                   finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
             WHERE id = @executionId AND status IN ('queued', 'running')
            RETURNING {ExecutionRow.Columns}
            """, new { executionId }, ct)
            ?? throw new ProblemException(409, "execution-finished", "Execution finished", "The execution ended before it could be cancelled.");
        return TypedResults.Accepted($"/v1/workspaces/{db.WorkspaceId}/connectors/{connectorId}/executions/{executionId}", row.ToExecution(withSteps: false));
    }

    /// <summary>
    /// Server-sent events: each step log entry as `event: step` with `id:` its position in the log, then the final
    /// execution as `event: end`; a reconnecting client sends `Last-Event-ID` and gets only the steps after it.
    /// Reads with a fresh short transaction per poll (under the caller's RLS context), so no transaction or
    /// connection stays open while streaming.
    /// </summary>
    private static async Task<IResult> Stream(Guid connectorId, Guid executionId, RequestDb db, Db databases, HttpContext http, CancellationToken ct)
    {
        await FindAsync(db, connectorId, executionId, ct);
        var context = db.Context;
        await db.CommitAsync(ct);
        await db.ReleaseAsync(); // the stream may last an hour: it must not hold a pooled connection meanwhile
        var resumeAfter = http.Request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastId
            ? int.TryParse(lastId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 0 ? n
              : throw Problems.BadRequest("Last-Event-ID must be the id of a step event of this stream.")
            : 0;
        http.Response.Headers["X-Accel-Buffering"] = "no";
        return TypedResults.ServerSentEvents(EventsAsync(databases, context, executionId, resumeAfter, ct));
    }

    private static async IAsyncEnumerable<System.Net.ServerSentEvents.SseItem<string>> EventsAsync(Db databases, WorkspaceContext context,
        Guid executionId, int sent, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var lastWrite = DateTime.MinValue; // a ping at once when there is nothing yet, so the client gets the headers now
        var deadline = DateTime.UtcNow.AddHours(1);
        while (!ct.IsCancellationRequested && DateTime.UtcNow < deadline)
        {
            // A pooled connection per poll: a slow client never pins a database connection for the stream's lifetime.
            (ExecutionRow Execution, List<JsonNode> NewSteps) snapshot;
            await using (var session = await WorkspaceSession.BeginAsync(databases, context, ct))
            {
                var row = await session.QuerySingleOrDefaultAsync<ExecutionRow>($"SELECT {ExecutionRow.Columns} FROM connector_executions WHERE id = @executionId", new { executionId }, ct)
                    ?? throw new InvalidOperationException("The execution is gone.");
                await session.CommitAsync(ct);
                var steps = JsonNode.Parse(row.StepsLog) as JsonArray ?? [];
                snapshot = (row, steps.Skip(sent).Select(s => s!.DeepClone()).ToList());
            }
            foreach (var step in snapshot.NewSteps)
            {
                yield return new System.Net.ServerSentEvents.SseItem<string>(step.ToJsonString(), "step")
                {
                    EventId = (++sent).ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
                lastWrite = DateTime.UtcNow;
            }
            if (ExecutionRow.IsFinished(snapshot.Execution.Status))
            {
                yield return new System.Net.ServerSentEvents.SseItem<string>(
                    JsonSerializer.Serialize(snapshot.Execution.ToExecution(withSteps: false), ApiJson.Options), "end");
                yield break;
            }
            if (DateTime.UtcNow - lastWrite > TimeSpan.FromSeconds(15))
            {
                yield return new System.Net.ServerSentEvents.SseItem<string>("{}", "ping"); // keeps proxies from closing an idle stream
                lastWrite = DateTime.UtcNow;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    private sealed record ConnectorToTest(int MaxConcurrency, string Config);

    private sealed record ConnectorToRun(string Manifest, bool IsActive, int MaxConcurrency, string ManifestVersion);
}
