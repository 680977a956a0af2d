using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;
using Plugboard.Data;
using Plugboard.Http;
using Plugboard.Jobs;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// The workspace's documents: upload (multipart), list with filters, read one, download the original, read its chunks,
/// soft delete and restore (admins), reprocess. Members upload and reprocess; viewers read.
/// </summary>
public static class DocumentsApi
{
    public static readonly string[] Sources = ["upload", "sync", "webhook"];
    public static readonly string[] Statuses = ["pending", "processing", "completed", "failed"];

    public static void Map(RouteGroupBuilder workspace)
    {
        var documents = workspace.MapGroup("/documents").WithTags("Documents");
        documents.MapPost("", (HttpContext http, RequestDb db, DocumentUploads uploads, [FromQuery(Name = "batch_id")] Guid? batchId, CancellationToken ct) =>
                UploadEndpoint.ReceiveAsync(http, db, uploads, batchId, ct))
            .WithMetadata(new StreamedUploadMetadata()).Produces<UploadResult>(201).Produces<UploadResult>(200);
        documents.MapGet("", List).Produces<Page<Document>>();
        documents.MapGet("/{documentId:guid}", async (Guid documentId, RequestDb db, CancellationToken ct) =>
            TypedResults.Ok((await FindAsync(db, documentId, ct)).ToDocument())).Produces<Document>();
        documents.MapGet("/{documentId:guid}/content", Download).Produces(200, contentType: "application/octet-stream");
        documents.MapGet("/{documentId:guid}/chunks", Chunks).Produces<Page<DocumentChunk>>();
        documents.MapDelete("/{documentId:guid}", (Guid documentId, RequestDb db, CancellationToken ct) => SetDeletedAsync(db, documentId, deleted: true, ct)).Produces<Document>();
        documents.MapPost("/{documentId:guid}/restore", (Guid documentId, RequestDb db, CancellationToken ct) => SetDeletedAsync(db, documentId, deleted: false, ct)).Produces<Document>();
        documents.MapPost("/{documentId:guid}/reprocess", Reprocess).Produces<Document>(202);
    }

    private static async Task<IResult> List(RequestDb db, string? source, [FromQuery(Name = "connector_id")] Guid? connectorId, [FromQuery(Name = "batch_id")] Guid? batchId,
        string? status, [FromQuery(Name = "content_type")] string? contentType, [FromQuery(Name = "content_hash")] string? contentHash, DateTime? since, DateTime? until,
        bool? deleted, int? limit, string? cursor, CancellationToken ct)
    {
        if (source is not null && !Sources.Contains(source))
        {
            throw Problems.BadRequest($"source must be one of: {string.Join(", ", Sources)}.");
        }
        if (status is not null && !Statuses.Contains(status))
        {
            throw Problems.BadRequest($"status must be one of: {string.Join(", ", Statuses)}.");
        }
        if (contentType is { Length: > 200 } || contentHash is { Length: > 64 })
        {
            throw Problems.BadRequest("content_type or content_hash is too long.");
        }
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<DocumentRow>(
            $"""
            SELECT {DocumentRow.Columns} FROM imported_documents
             WHERE is_deleted = coalesce(@deleted, false)
               AND (@source::text IS NULL OR source = @source)
               AND (@connectorId::uuid IS NULL OR connector_id = @connectorId)
               AND (@batchId::uuid IS NULL OR batch_id = @batchId)
               AND (@status::text IS NULL OR processing_status = @status)
               AND (@contentType::text IS NULL OR content_type = @contentType)
               AND (@contentHash::text IS NULL OR content_hash = lower(@contentHash))
               AND (@since::timestamptz IS NULL OR created_at >= @since)
               AND (@until::timestamptz IS NULL OR created_at < @until)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new
            {
                deleted,
                source,
                connectorId,
                batchId,
                status,
                contentType,
                contentHash,
                since = since?.ToUniversalTime(),
                until = until?.ToUniversalTime(),
                after = Paging.AfterId(cursor),
                take = take + 1
            }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Document>(page.Items.Select(r => r.ToDocument()).ToList(), page.NextCursor));
    }

    internal static async Task<DocumentRow> FindAsync(RequestDb db, Guid documentId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<DocumentRow>($"SELECT {DocumentRow.Columns} FROM imported_documents WHERE id = @documentId", new { documentId }, ct)
        ?? throw Problems.NotFound("The document");

    /// <summary>
    /// The original bytes, streamed from the bucket. The document row is read under row-level security first: the key
    /// alone never opens an object. Served as an attachment with nosniff, so a stored HTML file never runs in the API's origin.
    /// </summary>
    private static async Task<IResult> Download(Guid documentId, RequestDb db, IObjectStore store, HttpContext http, CancellationToken ct)
    {
        var row = await FindAsync(db, documentId, ct);
        var inline = row.StoragePath is null
            ? await db.QuerySingleOrDefaultAsync<string?>("SELECT content FROM imported_documents WHERE id = @documentId", new { documentId }, ct)
            : null;
        await db.CommitAsync(ct);
        await db.ReleaseAsync();
        var name = row.FileName ?? $"{row.Title}.txt";
        http.Response.Headers.XContentTypeOptions = "nosniff";
        http.Response.Headers.ContentSecurityPolicy = "default-src 'none'; sandbox";
        var disposition = new ContentDispositionHeaderValue("attachment");
        disposition.SetHttpFileName(name);
        http.Response.Headers.ContentDisposition = disposition.ToString();
        if (row.StoragePath is null)
        {
            return TypedResults.Text(inline ?? "", "text/plain; charset=utf-8"); // content a connector imported inline
        }
        var content = await store.OpenReadAsync(row.StoragePath, ct)
            ?? throw new ProblemException(410, "gone", "Original missing", "The original file of this document is no longer in storage.");
        return TypedResults.Stream(content, row.ContentType ?? MediaTypes.Binary);
    }

    private static async Task<IResult> Chunks(Guid documentId, RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        await FindAsync(db, documentId, ct);
        var take = Paging.Limit(limit);
        var after = Paging.After(cursor) is { } key ? int.TryParse(key, out var n) ? n : throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.") : -1;
        var rows = await db.QueryAsync<ChunkRow>(
            $"SELECT {ChunkRow.Columns} FROM document_chunks WHERE document_id = @documentId AND ordinal > @after ORDER BY ordinal LIMIT @take",
            new { documentId, after, take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Ordinal.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return TypedResults.Ok(new Page<DocumentChunk>(page.Items.Select(r => r.ToChunk()).ToList(), page.NextCursor));
    }

    private static async Task<IResult> SetDeletedAsync(RequestDb db, Guid documentId, bool deleted, CancellationToken ct)
    {
        var existing = await FindAsync(db, documentId, ct);
        db.RequireRole("admin", deleted ? "delete documents" : "restore documents");
        if (existing.IsDeleted == deleted)
        {
            return TypedResults.Ok(existing.ToDocument());
        }
        DocumentRow? row;
        try
        {
            row = await db.QuerySingleOrDefaultAsync<DocumentRow>(
                $"""
                UPDATE imported_documents SET is_deleted = @deleted, deleted_at = CASE WHEN @deleted THEN now() END
                 WHERE id = @documentId RETURNING {DocumentRow.Columns}
                """, new { documentId, deleted }, ct);
        }
        catch (Npgsql.PostgresException e) when (e.SqlState == Npgsql.PostgresErrorCodes.UniqueViolation)
        {
            throw Problems.Conflict("The workspace holds another document with the same content; delete that one first or keep this one deleted.");
        }
        await Audit.WriteAsync(db, deleted ? "document.deleted" : "document.restored", "document", documentId.ToString(), new { title = existing.Title }, ct);
        return TypedResults.Ok(row!.ToDocument());
    }

    private static async Task<IResult> Reprocess(Guid documentId, RequestDb db, DocumentPipelineOptions pipeline, CancellationToken ct)
    {
        var existing = await FindAsync(db, documentId, ct);
        db.RequireRole("member", "reprocess documents");
        if (existing.IsDeleted)
        {
            throw Problems.Conflict("The document is deleted; restore it before reprocessing.");
        }
        var parameters = new Dapper.DynamicParameters(new { documentId });
        JobQueue.AddInsertParameters(parameters, DocumentJob.Request(db.WorkspaceId!, documentId, force: true, concurrency: pipeline.WorkspaceConcurrency));
        var row = await db.QuerySingleOrDefaultAsync<DocumentRow>(
            $"""
            WITH job AS ({JobQueue.InsertOneSql})
            UPDATE imported_documents SET processing_status = 'pending', error = NULL WHERE id = @documentId RETURNING {DocumentRow.Columns}
            """, parameters, ct);
        return TypedResults.Accepted($"/v1/workspaces/{db.WorkspaceId}/documents/{documentId}", row!.ToDocument());
    }
}
