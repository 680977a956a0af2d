using System.Globalization;
using System.Text;
using Plugboard.Data;
using Plugboard.Jobs;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// Takes one uploaded file into the connector-imports bucket: streamed to a temporary file (hashed and counted on the
/// way, never held in memory), its type decided from its content, then handed to the store (the filesystem backend
/// renames it into place: the bytes are written once) and recorded — or refused with a reason. A file is either stored and recorded or neither: the object's intent row is written before the object and
/// deleted in the transaction that records it, and the sweeper removes objects whose intent outlived them.
/// </summary>
public sealed class DocumentUploads(Db db, BucketSettings bucket, IObjectStore store, DocumentPipelineOptions pipeline, ILogger<DocumentUploads> logger)
{
    public const int MaxFileNameLength = 255;

    /// <summary>How much of an oversized file is read and discarded before the request stops being read.</summary>
    public const long DrainAfterLimitBytes = 8 * 1024 * 1024;

    public async Task<UploadedFile> ReceiveAsync(WorkspaceContext context, Guid? batchId, Stream body, string? declaredName, string? declaredType,
        CancellationToken ct)
    {
        var name = CleanFileName(declaredName);
        Directory.CreateDirectory(pipeline.TemporaryDirectory);
        var temporary = Path.Combine(pipeline.TemporaryDirectory, $"{Guid.NewGuid():N}.upload");
        try
        {
            return await ReceiveIntoAsync(context, batchId, body, name, declaredType, temporary, ct);
        }
        finally
        {
            File.Delete(temporary); // gone already when the store took it over
        }
    }

    private async Task<UploadedFile> ReceiveIntoAsync(WorkspaceContext context, Guid? batchId, Stream body, string name, string? declaredType, string temporary,
        CancellationToken ct)
    {
        string detected;
        long size;
        string sha256;
        await using (var file = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Options = FileOptions.Asynchronous,
            Share = FileShare.None,
        }))
        {
            (size, sha256, var complete) = await CopyBoundedAsync(body, file, bucket.MaxFileBytes, ct);
            if (!complete)
            {
                return await RefuseAsync(context, batchId, name, size, null,
                    $"The file is larger than the {bucket.MaxFileSizeText} this bucket accepts.", 413, ct) with
                { BodyAbandoned = true };
            }
            if (size == 0)
            {
                return await RefuseAsync(context, batchId, name, 0, null, "The file is empty.", 422, ct);
            }
            detected = MediaTypes.Sniff(file, name);
        }
        if (MediaTypes.Refusal(detected, declaredType, bucket.AllowedTypes) is { } refusal)
        {
            return await RefuseAsync(context, batchId, name, size, detected, refusal, 415, ct);
        }

        // The same bytes already in the workspace: nothing is stored twice. Otherwise the object's intent, in the same transaction.
        var id = Guid.CreateVersion7();
        var key = ObjectKeys.Document(context.WorkspaceId, id);
        await using (var session = await WorkspaceSession.BeginAsync(db, context, ct))
        {
            // One statement: the document that already holds these bytes, or (when there is none) the object's intent.
            var existing = await session.QuerySingleOrDefaultAsync<Guid?>(
                $"""
                WITH existing AS ({ExistingSql}),
                intent AS (INSERT INTO pending_objects (object_key, workspace_id) SELECT @key, app_workspace_id() WHERE NOT EXISTS (SELECT FROM existing))
                SELECT id FROM existing
                """, new { sha256, key }, ct);
            if (existing is not null)
            {
                if (batchId is not null && !await TakeIntoBatchAsync(session, batchId.Value, ct))
                {
                    return new UploadedFile(name, UploadedFile.Refused, size, detected, sha256, null, BatchFullReason) { RefusalStatus = 409 };
                }
                await CountProcessedAsync(session, batchId, ct);
                await session.CommitAsync(ct);
                return new UploadedFile(name, UploadedFile.Duplicate, size, detected, sha256, existing, "The workspace already holds a document with the same content.");
            }
            await session.CommitAsync(ct);
        }
        var recorded = false;
        var intentSwept = false;
        try
        {
            await store.PutFileAsync(key, temporary, detected, ct);
            var outcome = await RecordAsync(context, batchId, id, key, name, detected, size, sha256, ct);
            recorded = outcome?.Outcome == UploadedFile.Accepted;
            // Null: the sweeper judged this upload abandoned and marked or took its intent; it is refused (and counted) instead.
            intentSwept = outcome is null;
            return outcome ?? await RefuseAsync(context, batchId, name, size, detected, "The upload took too long to be recorded; upload the file again.", 408, ct);
        }
        finally
        {
            if (intentSwept)
            {
                // The sweeper may have removed the object before it was stored: no document has this key, so it goes now,
                // under an intent of its own again (kept if the delete fails, so the sweeper tries later).
                await ForgetSweptAsync(context, key);
            }
            else if (!recorded)
            {
                await ForgetAsync(context, key);
            }
        }
    }

    /// <summary>Records the stored object as a document with its job, in one transaction that also removes the object's
    /// intent; null when the sweeper marked or took the intent (and may have deleted the object).</summary>
    private async Task<UploadedFile?> RecordAsync(WorkspaceContext context, Guid? batchId, Guid id, string key, string name, string mediaType, long size,
        string sha256, CancellationToken ct)
    {
        await using var session = await WorkspaceSession.BeginAsync(db, context, ct);
        var title = Path.GetFileNameWithoutExtension(name) is { Length: > 0 } stem ? stem : name;
        var parameters = new Dapper.DynamicParameters(new { id, batchId, title, name, mediaType, key, size, sha256 });
        JobQueue.AddInsertParameters(parameters, DocumentJob.Request(context.WorkspaceId, id, concurrency: pipeline.WorkspaceConcurrency));
        // The intent is deleted under its row lock first: when the sweeper marked or took it (and the object), nothing is inserted.
        var (intent, inserted) = await session.QuerySingleOrDefaultAsync<(bool, Guid?)>(
            $"""
            WITH intent AS (DELETE FROM pending_objects WHERE object_key = @key AND swept_at IS NULL RETURNING object_key),
            doc AS (
                INSERT INTO imported_documents (workspace_id, id, source, batch_id, title, file_name, content_type, storage_path, file_size, content_hash, created_by)
                SELECT app_workspace_id(), @id, 'upload', @batchId, @title, @name, @mediaType, @key, @size, @sha256, app_user_id() WHERE EXISTS (SELECT FROM intent)
                ON CONFLICT (workspace_id, content_hash) WHERE source = 'upload' AND NOT is_deleted AND content_hash IS NOT NULL DO NOTHING
                RETURNING id),
            job AS ({JobQueue.InsertOneSelectSql} WHERE EXISTS (SELECT FROM doc))
            SELECT EXISTS (SELECT FROM intent), (SELECT id FROM doc)
            """, parameters, ct);
        if (!intent)
        {
            return null; // rolled back: nothing is recorded
        }
        if (inserted is null)
        {
            // Another upload of the same bytes won the race: this one is its duplicate. Its intent stays (this transaction
            // is rolled back), so its object and intent are removed after, and the duplicate is counted on its own.
            await session.DisposeAsync(); // rolled back
            await using var duplicate = await WorkspaceSession.BeginAsync(db, context, ct);
            if (batchId is not null && !await TakeIntoBatchAsync(duplicate, batchId.Value, ct))
            {
                return new UploadedFile(name, UploadedFile.Refused, size, mediaType, sha256, null, BatchFullReason) { RefusalStatus = 409 };
            }
            if (await ExistingAsync(duplicate, sha256, ct) is not { } existing)
            {
                // The document it raced was deleted meanwhile: nothing holds these bytes, so this file is refused, not dropped.
                await duplicate.DisposeAsync();
                return await RefuseAsync(context, batchId, name, size, mediaType, "A document with the same content was deleted while this one was recorded; upload the file again.", 409, ct);
            }
            await CountProcessedAsync(duplicate, batchId, ct);
            await duplicate.CommitAsync(CancellationToken.None);
            return new UploadedFile(name, UploadedFile.Duplicate, size, mediaType, sha256, existing, "The workspace already holds a document with the same content.");
        }
        // The batch row is locked after the document row, in the order a document job takes them (its document, then
        // its batch's counters): the insert may wait for a job finishing a document of the same bytes, and that job must
        // not be waiting for this batch row meanwhile (a deadlock). A batch that is full rolls the insert back.
        if (batchId is not null && !await TakeIntoBatchAsync(session, batchId.Value, ct))
        {
            return new UploadedFile(name, UploadedFile.Refused, size, mediaType, sha256, null, BatchFullReason) { RefusalStatus = 409 };
        }
        // Not cancellable from here: once the client's request is gone, a commit that went through must not be undone by cleanup.
        await session.CommitAsync(CancellationToken.None);
        return new UploadedFile(name, UploadedFile.Accepted, size, mediaType, sha256, id, null);
    }

    private async Task<UploadedFile> RefuseAsync(WorkspaceContext context, Guid? batchId, string name, long size, string? detected, string reason, int status,
        CancellationToken ct)
    {
        if (batchId is not null)
        {
            await using var session = await WorkspaceSession.BeginAsync(db, context, ct);
            if (!await TakeIntoBatchAsync(session, batchId.Value, ct))
            {
                return new UploadedFile(name, UploadedFile.Refused, size, detected, null, null, BatchFullReason) { RefusalStatus = 409 };
            }
            await session.ExecuteAsync(
                "INSERT INTO file_upload_batch_failures (workspace_id, id, batch_id, file_name, reason) VALUES (app_workspace_id(), @id, @batchId, @name, @reason)",
                new { id = Guid.CreateVersion7(), batchId, name, reason }, ct);
            await session.ExecuteAsync("SELECT 1 FROM increment_batch_failed(@batchId)", new { batchId }, ct);
            await session.CommitAsync(ct);
        }
        return new UploadedFile(name, UploadedFile.Refused, size, detected, null, null, reason) { RefusalStatus = status };
    }

    private const string BatchFullReason = "The batch is finished or already holds the number of files it was created for.";

    /// <summary>Counts a file into a batch that can still take one (an open batch grows its total); false when it cannot.</summary>
    private static async Task<bool> TakeIntoBatchAsync(WorkspaceSession session, Guid batchId, CancellationToken ct) =>
        await session.ExecuteAsync(
            """
            UPDATE file_upload_batches
               SET received_files = received_files + 1,
                   total_files = CASE WHEN is_open THEN total_files + 1 ELSE total_files END,
                   status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END
             WHERE id = @batchId AND status IN ('pending', 'processing') AND (is_open OR received_files < total_files)
            """, new { batchId }, ct) == 1;

    /// <summary>A duplicate counts as processed: the batch's content is in the workspace.</summary>
    private static async Task CountProcessedAsync(WorkspaceSession session, Guid? batchId, CancellationToken ct)
    {
        if (batchId is not null)
        {
            await session.ExecuteAsync("SELECT 1 FROM increment_batch_processed(@batchId)", new { batchId }, ct);
        }
    }

    private const string ExistingSql =
        "SELECT id FROM imported_documents WHERE content_hash = @sha256 AND source = 'upload' AND NOT is_deleted AND content_hash IS NOT NULL";

    private static Task<Guid?> ExistingAsync(WorkspaceSession session, string sha256, CancellationToken ct) =>
        session.QuerySingleOrDefaultAsync<Guid?>(ExistingSql, new { sha256 }, ct);

    /// <summary>
    /// Removes an object that was stored but not recorded, with its intent. The intent is deleted first, under its row
    /// lock: if it is gone, the object belongs to a committed document (or the sweeper took it) and is kept; if the
    /// object cannot be deleted, the intent stays and the sweeper tries again. (A swept upload first writes its intent
    /// again: <see cref="ForgetSweptAsync"/>.)
    /// </summary>
    private async Task ForgetAsync(WorkspaceContext context, string key)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await using var session = await WorkspaceSession.BeginAsync(db, context, timeout.Token);
            if (await session.ExecuteAsync("DELETE FROM pending_objects WHERE object_key = @key", new { key }, timeout.Token) == 1)
            {
                await store.DeleteAsync(key, timeout.Token);
            }
            await session.CommitAsync(timeout.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogWarning(e, "Could not remove the unrecorded object {Key}; the sweeper will", key);
        }
    }

    private async Task ForgetSweptAsync(WorkspaceContext context, string key)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await using var session = await WorkspaceSession.BeginAsync(db, context, timeout.Token);
            await session.ExecuteAsync(
                "INSERT INTO pending_objects (object_key, workspace_id) VALUES (@key, app_workspace_id()) ON CONFLICT (object_key) DO NOTHING",
                new { key }, timeout.Token);
            await session.CommitAsync(timeout.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // No intent to fall back on: the object is deleted directly, or stays if that fails too.
            logger.LogWarning(e, "Could not keep an intent for the unrecorded object {Key}", key);
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await store.DeleteAsync(key, timeout.Token);
            }
            catch (Exception again) when (again is not OutOfMemoryException)
            {
                logger.LogWarning(again, "Could not remove the unrecorded object {Key}", key);
            }
            return;
        }
        await ForgetAsync(context, key);
    }

    /// <summary>Copies at most <paramref name="limit"/> bytes; when the body is longer, the rest is read and discarded.</summary>
    private static async Task<(long Size, string Sha256, bool Complete)> CopyBoundedAsync(Stream body, Stream target, long limit, CancellationToken ct)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        // Reads are gathered into writes of up to 1 MiB: fewer system calls than one write per network read.
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024 * 1024);
        try
        {
            long total = 0;
            var filled = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(filled), ct)) > 0)
            {
                total += read;
                filled += read;
                if (total > limit)
                {
                    // Read on a little, so a client that sends its whole body before reading gets the answer; then stop.
                    for (long drained = 0; drained < DrainAfterLimitBytes && (read = await body.ReadAsync(buffer, ct)) > 0; drained += read)
                    {
                    }
                    return (total, "", false);
                }
                if (filled == buffer.Length)
                {
                    hash.AppendData(buffer, 0, filled);
                    await target.WriteAsync(buffer.AsMemory(0, filled), ct);
                    filled = 0;
                }
            }
            hash.AppendData(buffer, 0, filled);
            await target.WriteAsync(buffer.AsMemory(0, filled), ct);
            await target.FlushAsync(ct);
            return (total, Convert.ToHexStringLower(hash.GetHashAndReset()), true);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The name a file is shown with: its last path segment only, without control characters or bidirectional
    /// overrides, at most 255 characters (cut on a character boundary). The name is metadata; keys never use it.
    /// </summary>
    public static string CleanFileName(string? name)
    {
        var text = (name ?? "").Replace('\\', '/');
        text = text[(text.LastIndexOf('/') + 1)..];
        var clean = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            var category = Rune.GetUnicodeCategory(rune);
            if (category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                continue; // NUL, newlines, right-to-left overrides and other invisible formatting
            }
            clean.Append(rune.ToString());
        }
        var result = clean.ToString().Trim().Trim('.');
        if (result.Length > MaxFileNameLength)
        {
            var info = new StringInfo(result);
            var extension = Path.GetExtension(result) is { Length: > 0 and <= 16 } ext ? ext : "";
            var keep = MaxFileNameLength - extension.Length;
            var cut = 0;
            for (var i = 0; i < info.LengthInTextElements; i++)
            {
                var element = info.SubstringByTextElements(i, 1);
                if (cut + element.Length > keep)
                {
                    break;
                }
                cut += element.Length;
            }
            result = result[..cut] + extension;
        }
        return result.Length > 0 ? result : "upload";
    }
}
