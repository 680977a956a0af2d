using System.Text.Json;
using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Running;
using Plugboard.Security;

namespace Plugboard.Features.Executions;

/// <summary>
/// Token refreshes persist into the encrypted credential. The row lock (FOR UPDATE) makes one refresh at a time per
/// credential across every worker process; the callback sees the freshest stored fields, so a second worker that
/// waited uses the token the first one obtained instead of refreshing again.
/// </summary>
public sealed class DbCredentialStore(Db db, KeyRing keys, string workspaceId, Guid credentialId) : ICredentialStore
{
    public async Task<IReadOnlyDictionary<string, string>> UpdateAsync(
        Func<IReadOnlyDictionary<string, string>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> refresh, CancellationToken ct)
    {
        var aad = KeyRing.Aad(workspaceId, "workspace_api_credentials", credentialId, "encrypted_payload");
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var encrypted = await connection.ExecuteScalarAsync<string>(new CommandDefinition(
            "SELECT encrypted_payload FROM workspace_api_credentials WHERE workspace_id = @workspaceId AND id = @credentialId FOR UPDATE",
            new { workspaceId, credentialId }, tx, cancellationToken: ct))
            ?? throw new InvalidOperationException("The connector's credential was deleted during the run.");
        var current = JsonSerializer.Deserialize<Dictionary<string, string>>(keys.Decrypt(encrypted, aad))!;
        var updated = await refresh(current, ct);
        if (!updated.OrderBy(p => p.Key).SequenceEqual(current.OrderBy(p => p.Key)))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE workspace_api_credentials SET encrypted_payload = @payload, key_id = @keyId WHERE workspace_id = @workspaceId AND id = @credentialId",
                new { payload = keys.Encrypt(JsonSerializer.Serialize(updated), aad), keyId = keys.CurrentKeyId, workspaceId, credentialId }, tx, cancellationToken: ct));
        }
        await tx.CommitAsync(ct);
        return updated;
    }
}
