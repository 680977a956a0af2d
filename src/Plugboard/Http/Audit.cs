using System.Text.Json;
using Plugboard.Data;

namespace Plugboard.Http;

/// <summary>Writes who did what to which resource, in the request's transaction. Details never carry secret values.</summary>
public static class Audit
{
    public static Task WriteAsync(RequestDb db, string action, string targetType, string? targetId, object? details, CancellationToken ct, bool platform = false) =>
        db.ExecuteAsync(
            """
            INSERT INTO audit_log (id, workspace_id, actor_user_id, actor_key_id, action, target_type, target_id, details)
            VALUES (@id, @workspaceId, app_user_id(), @keyId, @action, @targetType, @targetId, @details::jsonb)
            """,
            new
            {
                id = Guid.CreateVersion7(),
                workspaceId = platform ? null : db.WorkspaceId,
                keyId = db.KeyId,
                action,
                targetType,
                targetId,
                details = JsonSerializer.Serialize(details ?? new { }, ApiJson.Options),
            }, ct);
}
