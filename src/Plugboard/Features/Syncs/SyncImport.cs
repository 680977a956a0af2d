using System.Security.Cryptography;
using System.Text;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Engine.Running;

namespace Plugboard.Features.Syncs;

public sealed record ImportCounts(int Created, int Updated, int Unchanged, int Deleted);

/// <summary>
/// Writes one stream's records into <c>imported_documents</c>, keyed by (workspace, connector, external id). The
/// content hash (SHA-256 of the normalized document: title, URL, type, metadata and text) decides: a new key is
/// created, a different hash updated and queued for processing, the same hash left alone — no row written, nothing
/// reprocessed (a deleted record that comes back with the same hash is restored, counted as updated, and not reprocessed). A full refresh that fetched everything marks deleted what the stream no longer returns; a record that
/// comes back is restored.
/// </summary>
public static class SyncImport
{
    private const string ImportSql =
        """
        WITH incoming AS (
            SELECT * FROM unnest(@ids, @titles, @urls, @types, @contents, @downloads, @metadata, @hashes) AS t(external_id, title, url, content_type, content, download, metadata, hash)
        ),
        existing AS (
            SELECT d.external_id, d.content_hash, d.is_deleted
              FROM imported_documents d
             WHERE d.workspace_id = @workspaceId AND d.connector_id = @connectorId AND d.external_id = ANY(@ids)
        ),
        changed AS (
            SELECT i.*, e.external_id IS NULL AS is_new, e.content_hash IS DISTINCT FROM i.hash AS content_changed,
                   row_number() OVER (ORDER BY i.external_id) AS rn
              FROM incoming i LEFT JOIN existing e USING (external_id)
             WHERE e.external_id IS NULL OR e.content_hash IS DISTINCT FROM i.hash OR e.is_deleted
        ),
        seq AS (
            UPDATE workspace_change_counters SET last_seq = last_seq + (SELECT count(*) FROM changed)
             WHERE workspace_id = @workspaceId
            RETURNING last_seq - (SELECT count(*) FROM changed) AS base
        ),
        written AS (
            INSERT INTO imported_documents AS d (workspace_id, id, connector_id, external_id, stream, source, title, external_url, content_type,
                                                 content, download_url, file_size, content_hash, source_metadata, processing_status, change_seq, last_action, last_changed_at)
            SELECT @workspaceId, gen_random_uuid(), @connectorId, c.external_id, @stream, 'sync', c.title, c.url, c.content_type,
                   c.content, c.download, octet_length(c.content), c.hash, c.metadata::jsonb, 'pending', (SELECT base FROM seq) + c.rn, 'added', now()
              FROM changed c
            ON CONFLICT (workspace_id, connector_id, external_id) WHERE external_id IS NOT NULL DO UPDATE
               SET stream = excluded.stream, source = 'sync', title = excluded.title, external_url = excluded.external_url,
                   content_type = excluded.content_type, content = excluded.content, download_url = excluded.download_url,
                   file_size = CASE WHEN excluded.download_url IS NULL THEN excluded.file_size ELSE d.file_size END,
                   source_metadata = excluded.source_metadata, is_deleted = false, deleted_at = NULL,
                   processing_status = CASE WHEN d.content_hash IS DISTINCT FROM excluded.content_hash THEN 'pending' ELSE d.processing_status END,
                   content_hash = excluded.content_hash, change_seq = excluded.change_seq, last_action = 'updated', last_changed_at = now()
            RETURNING d.id, d.external_id
        ),
        queued AS (
            INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, max_attempts)
            SELECT gen_random_uuid(), 'document', jsonb_build_object('workspaceId', @workspaceId, 'documentId', w.id, 'force', false),
                   @workspaceId, 'documents:' || @workspaceId, @documentConcurrency, 5
              FROM written w JOIN changed c USING (external_id)
             WHERE c.content_changed
            RETURNING 1
        )
        SELECT count(*) FILTER (WHERE is_new)::int AS created,
               count(*) FILTER (WHERE NOT is_new)::int AS updated,
               (SELECT count(*) FROM queued)::int AS queued
          FROM changed
        """;

    private const string DeleteMissingSql =
        """
        WITH gone AS (
            SELECT id, row_number() OVER (ORDER BY external_id) AS rn
              FROM imported_documents
             WHERE workspace_id = @workspaceId AND connector_id = @connectorId AND stream = @stream AND source = 'sync' AND NOT is_deleted
               AND NOT (external_id = ANY(@ids))
        ),
        seq AS (
            UPDATE workspace_change_counters SET last_seq = last_seq + (SELECT count(*) FROM gone)
             WHERE workspace_id = @workspaceId
            RETURNING last_seq - (SELECT count(*) FROM gone) AS base
        )
        UPDATE imported_documents d
           SET is_deleted = true, deleted_at = now(), change_seq = (SELECT base FROM seq) + g.rn, last_action = 'deleted', last_changed_at = now()
          FROM gone g
         WHERE d.workspace_id = @workspaceId AND d.id = g.id
        """;

    /// <summary>Creates the workspace's change counter if needed; the imports that follow lock it until the sync commits.</summary>
    public static Task EnsureCounterAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string workspaceId, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO workspace_change_counters (workspace_id) VALUES (@workspaceId) ON CONFLICT (workspace_id) DO NOTHING",
            new { workspaceId }, tx, cancellationToken: ct));

    public static async Task<ImportCounts> ImportAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string workspaceId, Guid connectorId, StreamRecords stream,
        bool deleteMissing, int documentConcurrency, CancellationToken ct)
    {
        // The last record of a key wins: one statement cannot write the same row twice.
        var all = stream.Records.Select(r => r with { ExternalId = Jsonb.CleanText(r.ExternalId), ContentType = Jsonb.CleanText(r.ContentType) })
            .GroupBy(r => r.ExternalId, StringComparer.Ordinal).Select(g => g.Last()).ToList();
        var ids = all.Select(r => r.ExternalId).ToArray();
        var hashes = all.Select(Hash).ToArray();
        // What is stored already is read first (ids out, hashes back), so an unchanged record is never sent to the
        // server again: a re-sync where nothing changed costs one index scan, not a statement over every record.
        var stored = (await connection.QueryAsync<(string ExternalId, string? ContentHash, bool IsDeleted)>(new CommandDefinition(
            "SELECT external_id, content_hash, is_deleted FROM imported_documents WHERE workspace_id = @workspaceId AND connector_id = @connectorId AND external_id = ANY(@ids)",
            new { workspaceId, connectorId, ids }, tx, cancellationToken: ct))).ToDictionary(r => r.ExternalId, StringComparer.Ordinal);
        var changed = Enumerable.Range(0, all.Count)
            .Where(i => !stored.TryGetValue(ids[i], out var row) || row.IsDeleted || row.ContentHash != hashes[i]).ToList();
        var records = changed.Select(i => all[i]).ToList();
        var counts = records.Count == 0 ? (Created: 0, Updated: 0, Queued: 0) : await WriteAsync(connection, tx, workspaceId, connectorId, stream.Name, records,
            changed.Select(i => hashes[i]).ToArray(), documentConcurrency, ct);
        var deleted = 0;
        if (deleteMissing)
        {
            // Records committed by the sync's checkpoints were returned too.
            var seen = stream.CheckpointedIds.Count == 0 ? ids : [.. ids, .. stream.CheckpointedIds];
            deleted = await connection.ExecuteAsync(new CommandDefinition(DeleteMissingSql, new { workspaceId, connectorId, stream = stream.Name, ids = seen }, tx, cancellationToken: ct));
        }
        return new ImportCounts(counts.Created, counts.Updated, all.Count - counts.Created - counts.Updated, deleted);
    }

    private static async Task<(int Created, int Updated, int Queued)> WriteAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string workspaceId, Guid connectorId,
        string stream, List<SyncedRecord> records, string[] hashes, int documentConcurrency, CancellationToken ct)
    {
        var parameters = new DynamicParameters(new { workspaceId, connectorId, stream, documentConcurrency });
        parameters.Add("ids", records.Select(r => r.ExternalId).ToArray());
        parameters.Add("titles", records.Select(r => Jsonb.CleanText(r.Title)).ToArray());
        parameters.Add("urls", records.Select(r => r.Url is null ? null : Jsonb.CleanText(r.Url)).ToArray());
        parameters.Add("types", records.Select(r => r.ContentType).ToArray());
        parameters.Add("contents", records.Select(r => r.ContentUrl is null ? Jsonb.CleanText(r.Content) : null).ToArray());
        parameters.Add("downloads", records.Select(r => r.ContentUrl is null ? null : Jsonb.CleanText(r.ContentUrl)).ToArray());
        parameters.Add("metadata", records.Select(r => Jsonb.CleanJson(r.MetadataJson)).ToArray());
        parameters.Add("hashes", hashes);
        return await connection.QuerySingleAsync<(int Created, int Updated, int Queued)>(new CommandDefinition(ImportSql, parameters, tx, cancellationToken: ct));
    }

    /// <summary>SHA-256 of the normalized document (line endings unified, outer whitespace trimmed), as lower-case hex.</summary>
    public static string Hash(SyncedRecord record)
    {
        var normalized = string.Join('\u001f', record.Title, record.Url ?? "", record.ContentType, record.MetadataJson,
            record.Content.ReplaceLineEndings("\n").Trim());
        if (record.ContentUrl is not null)
        {
            // A file is known by its URL and metadata (a template puts the provider's modified time or version there).
            normalized += "\u001f" + record.ContentUrl;
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(normalized)));
    }
}
