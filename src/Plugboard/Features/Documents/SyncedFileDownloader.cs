using System.Text.Json.Nodes;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Engine.Running;
using Plugboard.Features.Documents.Extraction;
using Plugboard.Features.Executions;
using Plugboard.Security;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// Fetches a synced document's file (its stream's <c>content_url</c>) into the bucket for the document job: through
/// the connector's engine (SSRF guard; the connector's auth only on its credential hosts, refreshed as in runs), at most
/// the bucket's size limit, streamed to a local file, typed by its bytes and refused as an upload would be. The object
/// is stored under a fresh generated key with its intent recorded first, so a crash leaves nothing the sweeper misses.
/// </summary>
public sealed class SyncedFileDownloader(Db db, KeyRing keys, ConnectorRunner runner, ManifestCache manifests, BucketSettings bucket, IObjectStore store,
    DocumentPipelineOptions pipeline, ILogger<SyncedFileDownloader> logger)
{
    public sealed record StoredFile(string Key, string MediaType, long Size);

    private sealed record Connector(string Manifest, string ManifestVersion, string Config, Guid? CredentialId, string? EncryptedPayload);

    /// <summary>Stores the file and returns its object; <see cref="DocumentUnreadableException"/> when it can never be had.</summary>
    public async Task<StoredFile> DownloadAsync(NpgsqlConnection connection, string workspaceId, Guid documentId, Guid connectorId, string url, string? declaredType,
        CancellationToken ct)
    {
        var connector = await connection.QuerySingleOrDefaultAsync<Connector>(new CommandDefinition(
            """
            SELECT c.manifest::text AS manifest, c.id::text || ':' || c.row_version AS manifest_version, c.config::text AS config, c.credential_id, k.encrypted_payload
              FROM connectors c LEFT JOIN workspace_api_credentials k ON k.workspace_id = c.workspace_id AND k.id = c.credential_id
             WHERE c.workspace_id = @workspaceId AND c.id = @connectorId
            """, new { workspaceId, connectorId }, cancellationToken: ct))
            ?? throw new DocumentUnreadableException("The connector that synced this document is gone, so its file cannot be downloaded.");
        var manifest = manifests.Get(connector.ManifestVersion, connector.Manifest).Manifest
            ?? throw new DocumentUnreadableException("The connector's manifest is invalid, so its file cannot be downloaded.");
        var credentials = ConnectorCredentials.Decrypt(keys, workspaceId, connector.CredentialId, connector.EncryptedPayload, logger, $"Document {documentId}")
            ?? throw new DocumentUnreadableException(ConnectorCredentials.Unreadable);
        var credentialStore = connector.CredentialId is { } credentialId ? new DbCredentialStore(db, keys, workspaceId, credentialId) : null;
        var request = new RunRequest([], JsonNode.Parse(connector.Config) as JsonObject ?? [], credentials, credentialStore);

        Directory.CreateDirectory(pipeline.TemporaryDirectory);
        var path = Path.Combine(pipeline.TemporaryDirectory, $"{Guid.NewGuid():N}.download");
        try
        {
            string detected;
            long size;
            await using (var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Options = FileOptions.Asynchronous }))
            {
                var result = await runner.DownloadAsync(manifest, request, url, file, bucket.MaxFileBytes, ct);
                if (result.Error is { } error)
                {
                    throw result.Permanent ? new DocumentUnreadableException(error) : new IOException(error);
                }
                size = result.Bytes;
                if (size == 0)
                {
                    throw new DocumentUnreadableException("The downloaded file is empty.");
                }
                detected = MediaTypes.Sniff(file, FileNameOf(url));
                var declared = declaredType is null or MediaTypes.Binary ? result.MediaType : declaredType;
                if (MediaTypes.Refusal(detected, declared, bucket.AllowedTypes) is { } refusal)
                {
                    throw new DocumentUnreadableException(refusal);
                }
            }
            var key = ObjectKeys.Document(workspaceId, Guid.CreateVersion7());
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO pending_objects (object_key, workspace_id) VALUES (@key, @workspaceId)", new { key, workspaceId }, cancellationToken: ct));
            await store.PutFileAsync(key, path, detected, ct);
            return new StoredFile(key, detected, size);
        }
        finally
        {
            File.Delete(path); // gone already when the store took it over
        }
    }

    /// <summary>The last path segment, for the type sniffer's extension hint (.vtt, .md); never used as a key.</summary>
    private static string? FileNameOf(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) ? Path.GetFileName(Uri.UnescapeDataString(uri.AbsolutePath)) : null;
}
