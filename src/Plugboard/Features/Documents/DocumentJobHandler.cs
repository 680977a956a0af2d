using Dapper;
using Npgsql;
using NpgsqlTypes;
using Plugboard.Features.Documents.Extraction;
using Plugboard.Jobs;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// Takes a document <c>pending → processing → completed | failed</c>: reads the original from the bucket (or the
/// inline content), extracts its text, chunks it and replaces its chunks in one transaction with the job's completion.
/// A document whose content hash was processed already is not processed again unless reprocessing was asked for. A
/// document that can never be read fails at once with its reason; other errors are retried, and the last attempt
/// fails the document with what went wrong. A batch counts the document processed or failed exactly once.
/// </summary>
public sealed class DocumentJobHandler(IObjectStore store, DocumentPipelineOptions options, SyncedFileDownloader downloader, ILogger<DocumentJobHandler> logger) : IJobHandler
{
    private readonly Chunker _chunker = new(options.Chunking);

    public string Kind => DocumentJob.Kind;

    private sealed record Target(Guid Id, string Source, string? StoragePath, string? ContentType, string? Content, string? ContentHash, string? ProcessedHash,
        string ProcessingStatus, Guid? BatchId, string Title, string? FileName, Guid? ConnectorId, string? DownloadUrl);

    public async Task HandleAsync(ClaimedJob job, JobContext context, CancellationToken ct)
    {
        var payload = job.PayloadAs<DocumentJob.Payload>();
        if (payload.WorkspaceId != job.WorkspaceId)
        {
            // The API role may insert jobs into its own workspace only (row-level security): a payload naming another
            // workspace is forged, and another workspace's document is never touched.
            throw new PermanentJobFailure("The job's payload names another workspace than the job itself.");
        }
        await using var connection = await context.OpenConnectionAsync(ct);
        var target = await connection.QuerySingleOrDefaultAsync<Target>(new CommandDefinition(
            """
            SELECT id, source, storage_path, content_type, content, content_hash, processed_hash, processing_status, batch_id, title, file_name,
                   connector_id, download_url
              FROM imported_documents WHERE workspace_id = @WorkspaceId AND id = @DocumentId
            """, payload, cancellationToken: ct));
        if (target is null || (!payload.Force && target.ProcessingStatus == "completed" && target.ProcessedHash == target.ContentHash))
        {
            return; // deleted, or these bytes are processed already
        }
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE imported_documents SET processing_status = 'processing', error = NULL WHERE workspace_id = @WorkspaceId AND id = @DocumentId", payload, cancellationToken: ct));
        IReadOnlyList<Chunk> chunks;
        string? title;
        try
        {
            if (target.DownloadUrl is not null && target.ConnectorId is { } connectorId && (target.StoragePath is null || target.ProcessedHash != target.ContentHash))
            {
                target = await DownloadAsync(connection, payload, target, connectorId, ct);
            }
            (chunks, title) = await ExtractAsync(target, ct);
        }
        catch (DocumentUnreadableException e)
        {
            await FailAsync(connection, context, payload, target, e.Message, ct);
            return;
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            logger.LogWarning(e, "Document {DocumentId} failed its last attempt", payload.DocumentId);
            await FailAsync(connection, context, payload, target, $"The document could not be processed after {job.Attempt} attempts: {e.Message}", ct);
            return;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE imported_documents SET processing_status = 'pending', error = @error WHERE workspace_id = @WorkspaceId AND id = @DocumentId",
                new { payload.WorkspaceId, payload.DocumentId, error = $"Attempt {job.Attempt} failed ({e.Message}); it will be retried." }, cancellationToken: ct));
            throw;
        }
        try
        {
            await CompleteAsync(connection, context, payload, target, chunks, title, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException && job.Attempt >= job.MaxAttempts)
        {
            logger.LogWarning(e, "Document {DocumentId} could not be stored on its last attempt", payload.DocumentId);
            await FailAsync(connection, context, payload, target, $"The document's chunks could not be stored after {job.Attempt} attempts: {e.Message}", ct);
        }
    }

    /// <summary>
    /// A synced file new or changed since it was last processed: downloaded into a new object, which replaces the
    /// document's previous one in one transaction with the object's intent removed; the previous object is deleted after.
    /// </summary>
    private async Task<Target> DownloadAsync(NpgsqlConnection connection, DocumentJob.Payload payload, Target target, Guid connectorId, CancellationToken ct)
    {
        var file = await downloader.DownloadAsync(connection, payload.WorkspaceId, payload.DocumentId, connectorId, target.DownloadUrl!, target.ContentType, ct);
        // The object, then its intent: a delete that fails leaves the intent for the sweeper.
        async Task RemoveUnrecordedAsync()
        {
            await store.DeleteAsync(file.Key, ct);
            await connection.ExecuteAsync(new CommandDefinition("DELETE FROM pending_objects WHERE object_key = @Key", file, cancellationToken: ct));
        }
        await using (var transaction = await connection.BeginTransactionAsync(ct))
        {
            // The intent first, under its row lock: one the sweeper marked (or took) means the object may be gone already,
            // so nothing is recorded; the object is removed under an intent of its own again and the file downloaded anew.
            if (await connection.ExecuteAsync(new CommandDefinition(
                    "DELETE FROM pending_objects WHERE object_key = @Key AND swept_at IS NULL", file, transaction, cancellationToken: ct)) == 0)
            {
                await transaction.RollbackAsync(ct);
                await connection.ExecuteAsync(new CommandDefinition(
                    "INSERT INTO pending_objects (object_key, workspace_id) VALUES (@Key, @WorkspaceId) ON CONFLICT (object_key) DO NOTHING",
                    new { file.Key, payload.WorkspaceId }, cancellationToken: ct));
                await RemoveUnrecordedAsync();
                throw new IOException("The downloaded file was judged abandoned before it was recorded; it will be downloaded again.");
            }
            // Compare and swap on the object it replaces: of two jobs of one document downloading at once, one records
            // its object and the other removes its own (its intent stays until then, so the sweeper would too).
            var recorded = await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE imported_documents SET storage_path = @Key, content_type = @MediaType, file_size = @Size
                 WHERE workspace_id = @WorkspaceId AND id = @DocumentId AND download_url = @url AND storage_path IS NOT DISTINCT FROM @previous
                """, new { file.Key, file.MediaType, file.Size, payload.WorkspaceId, payload.DocumentId, url = target.DownloadUrl, previous = target.StoragePath },
                transaction, cancellationToken: ct));
            if (recorded == 0)
            {
                await transaction.RollbackAsync(ct); // the intent comes back with the rollback
                await RemoveUnrecordedAsync();
                throw new IOException("The document changed while its file was downloaded; it will be downloaded again.");
            }
            await transaction.CommitAsync(ct);
        }
        if (target.StoragePath is { } previous && previous != file.Key)
        {
            try
            {
                await store.DeleteAsync(previous, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Document {DocumentId}: its previous file {Key} could not be deleted", payload.DocumentId, previous);
            }
        }
        return target with { StoragePath = file.Key, ContentType = file.MediaType };
    }

    private async Task<(IReadOnlyList<Chunk> Chunks, string? Title)> ExtractAsync(Target target, CancellationToken ct)
    {
        await using var content = await OpenAsync(target, ct);
        var text = Extractor.Extract(content, target.ContentType ?? MediaTypes.PlainText, options.MaxUncompressedBytes);
        return (_chunker.Split(text), text.Title);
    }

    /// <summary>
    /// The document's bytes as a seekable stream (parsers seek: PDF cross-references, zip directories): the inline
    /// content, the stored object, or — for a remote object — a local copy deleted when the stream closes.
    /// </summary>
    private async Task<Stream> OpenAsync(Target target, CancellationToken ct)
    {
        if (target.StoragePath is null)
        {
            return new MemoryStream(System.Text.Encoding.UTF8.GetBytes(target.Content ?? ""));
        }
        var original = await store.OpenReadAsync(target.StoragePath, ct)
            ?? throw new DocumentUnreadableException("The original file is missing from storage; upload it again.");
        if (original.CanSeek)
        {
            return original;
        }
        await using (original)
        {
            Directory.CreateDirectory(options.TemporaryDirectory);
            var spooled = new FileStream(Path.Combine(options.TemporaryDirectory, $"{Guid.NewGuid():N}.process"), new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous,
            });
            try
            {
                await original.CopyToAsync(spooled, ct);
                spooled.Position = 0;
                return spooled;
            }
            catch
            {
                await spooled.DisposeAsync();
                throw;
            }
        }
    }

    private async Task CompleteAsync(NpgsqlConnection connection, JobContext context, DocumentJob.Payload payload, Target target, IReadOnlyList<Chunk> chunks,
        string? extractedTitle, CancellationToken ct)
    {
        var title = target.Source == "upload" && extractedTitle is { Length: > 0 } t ? Clean(t) : target.Title;
        title = title.Length > 500 ? title[..500] : title;
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await LockAsync(connection, transaction, payload, ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM document_chunks WHERE workspace_id = @WorkspaceId AND document_id = @DocumentId", payload, transaction, cancellationToken: ct));
        await using (var insert = new NpgsqlCommand(
            """
            INSERT INTO document_chunks (workspace_id, document_id, ordinal, content, heading_path, char_start, char_end, page_start, page_end,
                                         start_ms, end_ms, speaker, token_count, search)
            SELECT $1, $2, t.ordinal, t.content, string_to_array(t.heading, E'\x1f'), t.char_start, t.char_end, t.page_start, t.page_end,
                   t.start_ms, t.end_ms, t.speaker, t.token_count,
                   setweight(to_tsvector($3::regconfig, $4), 'A') || setweight(to_tsvector($3::regconfig, replace(t.heading, E'\x1f', ' ')), 'B')
                   || setweight(to_tsvector($3::regconfig, t.content), 'D')
              FROM unnest($5::int[], $6::text[], $7::text[], $8::int[], $9::int[], $10::int[], $11::int[], $12::bigint[], $13::bigint[], $14::text[], $15::int[])
                   AS t(ordinal, content, heading, char_start, char_end, page_start, page_end, start_ms, end_ms, speaker, token_count)
            """, connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = payload.WorkspaceId });
            insert.Parameters.Add(new NpgsqlParameter { Value = payload.DocumentId });
            insert.Parameters.Add(new NpgsqlParameter { Value = options.SearchConfiguration });
            insert.Parameters.Add(new NpgsqlParameter { Value = title });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.Ordinal).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => Clean(c.Content)).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => string.Join('\x1f', c.HeadingPath.Select(Clean))).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.CharStart).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.CharEnd).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.PageStart).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.PageEnd).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.StartMs).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.EndMs).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.Speaker is null ? null : Clean(c.Speaker)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = chunks.Select(c => c.TokenCount).ToArray() });
            await insert.ExecuteNonQueryAsync(ct);
        }
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE imported_documents
               SET processing_status = 'completed', error = NULL, chunk_count = @count, chunks_generated = true, processed_hash = content_hash,
                   title = @title
             WHERE workspace_id = @WorkspaceId AND id = @DocumentId
            """, new { payload.WorkspaceId, payload.DocumentId, count = chunks.Count, title }, transaction, cancellationToken: ct));
        await CountInBatchAsync(connection, transaction, payload, target, processed: true, null, ct);
        if (await context.CompleteAsync(connection, transaction, ct))
        {
            await transaction.CommitAsync(ct);
        }
    }

    /// <summary>Two jobs of one document (a reprocess asked while one runs) replace its chunks one after the other, never interleaved.</summary>
    private static Task LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, DocumentJob.Payload payload, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            "SELECT 1 FROM imported_documents WHERE workspace_id = @WorkspaceId AND id = @DocumentId FOR UPDATE", payload, transaction, cancellationToken: ct));

    private static async Task FailAsync(NpgsqlConnection connection, JobContext context, DocumentJob.Payload payload, Target target, string reason, CancellationToken ct)
    {
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await LockAsync(connection, transaction, payload, ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM document_chunks WHERE workspace_id = @WorkspaceId AND document_id = @DocumentId", payload, transaction, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE imported_documents
               SET processing_status = 'failed', error = @reason, chunk_count = 0, chunks_generated = false, processed_hash = content_hash
             WHERE workspace_id = @WorkspaceId AND id = @DocumentId
            """, new { payload.WorkspaceId, payload.DocumentId, reason }, transaction, cancellationToken: ct));
        await CountInBatchAsync(connection, transaction, payload, target, processed: false, reason, ct);
        if (await context.CompleteAsync(connection, transaction, ct))
        {
            await transaction.CommitAsync(ct);
        }
    }

    /// <summary>Counts the document in its batch the first time it ends either way (the row lock makes two endings count once).</summary>
    private static async Task CountInBatchAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, DocumentJob.Payload payload, Target target,
        bool processed, string? reason, CancellationToken ct)
    {
        var batchId = await connection.QuerySingleOrDefaultAsync<Guid?>(new CommandDefinition(
            """
            UPDATE imported_documents SET batch_counted = true
             WHERE workspace_id = @WorkspaceId AND id = @DocumentId AND batch_id IS NOT NULL AND NOT batch_counted
            RETURNING batch_id
            """, payload, transaction, cancellationToken: ct));
        if (batchId is null)
        {
            return;
        }
        var batch = new { payload.WorkspaceId, batchId, payload.DocumentId, id = Guid.CreateVersion7(), name = target.FileName ?? target.Title, reason };
        if (!processed)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO file_upload_batch_failures (workspace_id, id, batch_id, file_name, reason, document_id) VALUES (@WorkspaceId, @id, @batchId, @name, @reason, @DocumentId)",
                batch, transaction, cancellationToken: ct));
        }
        await connection.ExecuteAsync(new CommandDefinition(
            processed ? "SELECT 1 FROM increment_batch_processed(@batchId)" : "SELECT 1 FROM increment_batch_failed(@batchId)", batch, transaction, cancellationToken: ct));
    }

    /// <summary>PostgreSQL text holds no NUL; the search snippets' markers (private-use U+E000/U+E001) never come from content.</summary>
    private static string Clean(string text) =>
        text.AsSpan().IndexOfAny('\0', '\uE000', '\uE001') < 0 ? text : text.Replace('\0', '\uFFFD').Replace('\uE000', '\uFFFD').Replace('\uE001', '\uFFFD');
}
