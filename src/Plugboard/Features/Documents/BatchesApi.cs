using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Documents;

public sealed record CreateBatchRequest(int? ExpectedFiles = null, JsonElement? Metadata = null);

/// <summary>
/// A batch's progress. <c>total_files</c> is what it waits for: the expected count, or — for a batch created without
/// one (<c>is_open</c>) — the files received so far, fixed when it is closed. It completes when processed + failed
/// reaches the total. <c>failures</c> lists every file it could not take or process, with the reason.
/// </summary>
public sealed record Batch(Guid Id, string Status, bool IsOpen, int TotalFiles, int ReceivedFiles, int ProcessedFiles, int FailedFiles, JsonElement Metadata,
    DateTime CreatedAt, DateTime UpdatedAt, DateTime? CompletedAt, IReadOnlyList<BatchFailure>? Failures = null);

public sealed record BatchFailure(string FileName, string Reason, Guid? DocumentId, DateTime CreatedAt);

internal sealed record BatchRow
{
    public Guid Id { get; init; }
    public string Status { get; init; } = "";
    public bool IsOpen { get; init; }
    public int TotalFiles { get; init; }
    public int ReceivedFiles { get; init; }
    public int ProcessedFiles { get; init; }
    public int FailedFiles { get; init; }
    public string Metadata { get; init; } = "{}";
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    public DateTime? CompletedAt { get; init; }

    public const string Columns =
        "id, status, is_open, total_files, received_files, processed_files, failed_files, metadata::text AS metadata, created_at, updated_at, completed_at";

    public Batch ToBatch(IReadOnlyList<BatchFailure>? failures = null) => new(Id, Status, IsOpen, TotalFiles, ReceivedFiles, ProcessedFiles, FailedFiles,
        JsonColumns.Element(Metadata), CreatedAt, UpdatedAt, CompletedAt, failures);

    public static bool IsFinished(string status) => status is "completed" or "completed_with_errors" or "failed" or "cancelled";
}

/// <summary>Upload batches: create, upload files into (in parallel), close, watch (JSON or server-sent events).</summary>
public static class BatchesApi
{
    public const int MaxExpectedFiles = 1_000_000;
    public const int MaxFailuresShown = 1000;

    public static void Map(RouteGroupBuilder workspace)
    {
        var batches = workspace.MapGroup("/uploads/batches").WithTags("Uploads");
        batches.MapPost("", Create).Produces<Batch>(201);
        batches.MapGet("", List).Produces<Page<Batch>>();
        batches.MapGet("/{batchId:guid}", async (Guid batchId, RequestDb db, CancellationToken ct) => TypedResults.Ok(await ReadAsync(db, batchId, ct))).Produces<Batch>();
        batches.MapPost("/{batchId:guid}/files", (Guid batchId, HttpContext http, RequestDb db, DocumentUploads uploads, CancellationToken ct) =>
                UploadEndpoint.ReceiveAsync(http, db, uploads, batchId, ct))
            .WithMetadata(new StreamedUploadMetadata()).Produces<UploadResult>(201).Produces<UploadResult>(200);
        batches.MapPost("/{batchId:guid}/close", Close).Produces<Batch>();
        batches.MapGet("/{batchId:guid}/stream", Stream).Produces(200, contentType: "text/event-stream");
    }

    private static async Task<IResult> Create(CreateBatchRequest body, HttpContext http, RequestDb db, CancellationToken ct)
    {
        db.RequireRole("member", "create upload batches");
        if (body.ExpectedFiles is { } expected && (expected < 1 || expected > MaxExpectedFiles))
        {
            throw Problems.Invalid($"expected_files must be between 1 and {MaxExpectedFiles}.", "/expected_files");
        }
        var metadata = JsonColumns.Object(body.Metadata, "metadata", 16 * 1024);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var row = await db.QuerySingleOrDefaultAsync<BatchRow>(
            $"""
            INSERT INTO file_upload_batches (workspace_id, id, total_files, is_open, metadata, created_by)
            VALUES (app_workspace_id(), @id, coalesce(@expected, 0), @expected IS NULL, @metadata::jsonb, app_user_id())
            RETURNING {BatchRow.Columns}
            """, new { id = Guid.CreateVersion7(), expected = body.ExpectedFiles, metadata }, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/uploads/batches/{row!.Id}", row.ToBatch([]), ct);
    }

    public static readonly string[] Statuses = ["pending", "processing", "completed", "completed_with_errors", "failed", "cancelled"];

    internal static async Task<IResult> List(RequestDb db, string? status, int? limit, string? cursor, CancellationToken ct)
    {
        if (status is not null && !Statuses.Contains(status))
        {
            throw Problems.BadRequest($"status must be one of: {string.Join(", ", Statuses)}.");
        }
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<BatchRow>(
            $"""
            SELECT {BatchRow.Columns} FROM file_upload_batches
             WHERE (@status::text IS NULL OR status = @status) AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new { status, after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Batch>(page.Items.Select(r => r.ToBatch()).ToList(), page.NextCursor));
    }

    private static async Task<Batch> ReadAsync(RequestDb db, Guid batchId, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<BatchRow>($"SELECT {BatchRow.Columns} FROM file_upload_batches WHERE id = @batchId", new { batchId }, ct)
            ?? throw Problems.NotFound("The batch");
        return row.ToBatch(await FailuresAsync(db.QueryAsync<BatchFailure>, batchId, ct));
    }

    private static Task<IReadOnlyList<BatchFailure>> FailuresAsync(Func<string, object?, CancellationToken, Task<IReadOnlyList<BatchFailure>>> query, Guid batchId, CancellationToken ct) =>
        query($"SELECT file_name, reason, document_id, created_at FROM file_upload_batch_failures WHERE batch_id = @batchId ORDER BY id LIMIT {MaxFailuresShown}",
            new { batchId }, ct);

    private static async Task<IResult> Close(Guid batchId, RequestDb db, CancellationToken ct)
    {
        var batch = await ReadAsync(db, batchId, ct);
        db.RequireRole("member", "close upload batches");
        if (!batch.IsOpen)
        {
            return TypedResults.Ok(batch); // closed already, or created with its count
        }
        await db.ExecuteAsync("SELECT 1 FROM close_batch(@batchId)", new { batchId }, ct);
        return TypedResults.Ok(await ReadAsync(db, batchId, ct));
    }

    /// <summary>Progress as server-sent events (<see cref="PolledEvents"/>): the batch whenever a counter changes, then
    /// the finished batch with its failures.</summary>
    private static async Task<IResult> Stream(Guid batchId, RequestDb db, Db databases, HttpContext http, CancellationToken ct)
    {
        await ReadAsync(db, batchId, ct);
        return await PolledEvents.StreamAsync(db, databases, http, async (session, token) =>
        {
            var row = await session.QuerySingleOrDefaultAsync<BatchRow>($"SELECT {BatchRow.Columns} FROM file_upload_batches WHERE id = @batchId", new { batchId }, token);
            if (row is null)
            {
                return null; // deleted with its workspace
            }
            var finished = BatchRow.IsFinished(row.Status);
            var batch = finished ? row.ToBatch(await FailuresAsync(session.QueryAsync<BatchFailure>, batchId, token)) : row.ToBatch();
            return new PolledState($"{row.ReceivedFiles}/{row.ProcessedFiles}/{row.FailedFiles}/{row.TotalFiles}/{row.Status}", batch, finished);
        }, ct);
    }
}
