using Dapper;
using Npgsql;

namespace Plugboard.Tests.Infrastructure;

/// <summary>Fills every tenant table of a workspace with a row, directly as the database owner.</summary>
public static class Seed
{
    public sealed record Rows(string WorkspaceId, Guid UserId, Guid CredentialId, Guid ConnectorId, Guid BatchId, Guid TemplateId, Guid DocumentId);

    public static readonly string[] TenantTables =
    [
        "workspaces", "workspace_members", "api_keys", "audit_log", "connector_templates", "workspace_api_credentials", "connectors",
        "connector_executions", "connector_sync_logs", "connector_webhook_events", "file_upload_batches", "imported_documents",
        "file_upload_batch_failures", "document_chunks", "pending_objects", "connector_stream_states",
        "oauth_authorizations", "connector_webhook_failures",
    ];

    public static async Task<Rows> WorkspaceAsync(PlugboardServer server, string workspaceId, Guid userId)
    {
        var rows = new Rows(workspaceId, userId, Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7());
        await using var connection = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        await connection.ExecuteAsync(
            """
            INSERT INTO workspace_api_credentials (workspace_id, id, name, auth_type, encrypted_payload, key_id, masked_hint)
                VALUES (@WorkspaceId, @CredentialId, 'seed-' || @CredentialId, 'bearer', 'pb1:k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'k', '••••');
            INSERT INTO connectors (workspace_id, id, name, credential_id) VALUES (@WorkspaceId, @ConnectorId, 'seed-' || @ConnectorId, @CredentialId);
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, duration_ms) VALUES (@WorkspaceId, gen_random_uuid(), @ConnectorId, 'succeeded', 10);
            INSERT INTO connector_sync_logs (workspace_id, id, connector_id) VALUES (@WorkspaceId, gen_random_uuid(), @ConnectorId);
            INSERT INTO connector_stream_states (workspace_id, connector_id, stream, cursor) VALUES (@WorkspaceId, @ConnectorId, 'seed', '"2026-01-01T00:00:00Z"');
            INSERT INTO connector_webhook_events (workspace_id, id, connector_id) VALUES (@WorkspaceId, gen_random_uuid(), @ConnectorId);
            INSERT INTO connector_webhook_failures (workspace_id, connector_id, failed_verifications, last_failure, last_failure_at)
                VALUES (@WorkspaceId, @ConnectorId, 1, 'seed', now());
            INSERT INTO file_upload_batches (workspace_id, id, connector_id, total_files) VALUES (@WorkspaceId, @BatchId, @ConnectorId, 2);
            INSERT INTO imported_documents (workspace_id, id, connector_id, batch_id, title) VALUES (@WorkspaceId, @DocumentId, @ConnectorId, @BatchId, 'seed');
            INSERT INTO file_upload_batch_failures (workspace_id, id, batch_id, file_name, reason) VALUES (@WorkspaceId, gen_random_uuid(), @BatchId, 'seed.exe', 'seed');
            INSERT INTO document_chunks (workspace_id, document_id, ordinal, content, char_start, char_end, token_count, search)
                VALUES (@WorkspaceId, @DocumentId, 0, 'seed', 0, 4, 1, to_tsvector('simple', 'seed'));
            INSERT INTO pending_objects (object_key, workspace_id) VALUES ('workspaces/' || @WorkspaceId || '/documents/' || replace(gen_random_uuid()::text, '-', ''), @WorkspaceId);
            INSERT INTO connector_templates (id, workspace_id, kind, slug, name, manifest) VALUES (@TemplateId, @WorkspaceId, 'community', 'seed-' || left(md5(@TemplateId::text), 8), 'Seed', '{}');
            INSERT INTO audit_log (id, workspace_id, actor_user_id, action, target_type) VALUES (gen_random_uuid(), @WorkspaceId, @UserId, 'seed', 'seed');
            INSERT INTO oauth_authorizations (workspace_id, id, state_hash, created_by, manifest, credential_name, encrypted_payload, redirect_uri, expires_at)
                VALUES (@WorkspaceId, gen_random_uuid(), sha256(convert_to(gen_random_uuid()::text, 'UTF8')), @UserId, '{}', 'seed', 'pb1:k:AAAA',
                        'http://127.0.0.1/v1/oauth/callback', now() + interval '10 minutes');
            INSERT INTO api_keys (id, workspace_id, user_id, name, prefix, key_hash)
                VALUES (gen_random_uuid(), @WorkspaceId, @UserId, 'seed', 'pb_' || left(md5(random()::text), 8), decode(md5(random()::text), 'hex'));
            """, rows);
        return rows;
    }
}
