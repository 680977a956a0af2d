using System.Text.Json;
using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Running;
using Plugboard.Security;

namespace Plugboard.Features.Executions;

/// <summary>
/// Token refreshes persist into the encrypted credential, one at a time per credential across every worker process,
/// without a lock held during the token request: a worker takes a short lease on the row (refreshing_until), reads
/// the freshest fields, refreshes outside any transaction, then stores the result and releases the lease only if it
/// still holds it. A worker that finds the lease taken waits for it, then sees the token the first one obtained
/// instead of refreshing again. An admin's edit of the credential meanwhile never waits on the provider.
/// </summary>
public sealed class DbCredentialStore(Db db, KeyRing keys, string workspaceId, Guid credentialId) : ICredentialStore
{
    /// <summary>Longer than any token request may take (the step timeout, and the refresh is not retried on a timeout).</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);

    public async Task<IReadOnlyDictionary<string, string>> UpdateAsync(
        Func<IReadOnlyDictionary<string, string>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> refresh, CancellationToken ct)
    {
        var aad = KeyRing.Aad(workspaceId, "workspace_api_credentials", credentialId, "encrypted_payload");
        var (lease, encrypted) = await AcquireAsync(ct);
        try
        {
            var current = JsonSerializer.Deserialize<Dictionary<string, string>>(keys.Decrypt(encrypted, aad))!;
            var updated = await refresh(current, ct);
            var changed = !updated.OrderBy(p => p.Key).SequenceEqual(current.OrderBy(p => p.Key));
            await using var connection = await db.Service.OpenConnectionAsync(ct);
            await using var tx = await connection.BeginTransactionAsync(ct);
            var stored = changed && await connection.ExecuteAsync(new CommandDefinition(
                """
                UPDATE workspace_api_credentials
                   SET encrypted_payload = @payload, key_id = @keyId, secret_fields = @fields, credentials_updated_at = now(), refreshing_until = NULL
                 WHERE workspace_id = @workspaceId AND id = @credentialId AND refreshing_until = @lease
                """,
                new
                {
                    payload = keys.Encrypt(JsonSerializer.Serialize(updated), aad),
                    keyId = keys.CurrentKeyId,
                    fields = updated.Keys.Order().ToArray(),
                    workspaceId,
                    credentialId,
                    lease
                }, tx, cancellationToken: ct)) == 1;
            if (stored)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    "UPDATE connectors SET credentials_updated_at = now() WHERE workspace_id = @workspaceId AND credential_id = @credentialId",
                    new { workspaceId, credentialId }, tx, cancellationToken: ct));
            }
            await tx.CommitAsync(ct);
            return updated;
        }
        finally
        {
            await ReleaseAsync(lease);
        }
    }

    private async Task<(DateTime Lease, string Encrypted)> AcquireAsync(CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + Lease + TimeSpan.FromSeconds(30);
        while (true)
        {
            await using (var connection = await db.Service.OpenConnectionAsync(ct))
            {
                var taken = await connection.QuerySingleOrDefaultAsync<(DateTime Lease, string Encrypted)?>(new CommandDefinition(
                    """
                    UPDATE workspace_api_credentials SET refreshing_until = date_trunc('milliseconds', clock_timestamp()) + @duration
                     WHERE workspace_id = @workspaceId AND id = @credentialId AND (refreshing_until IS NULL OR refreshing_until < now())
                    RETURNING refreshing_until, encrypted_payload
                    """, new { workspaceId, credentialId, duration = Lease }, cancellationToken: ct));
                if (taken is { } lease)
                {
                    return lease;
                }
                var exists = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                    "SELECT EXISTS (SELECT FROM workspace_api_credentials WHERE workspace_id = @workspaceId AND id = @credentialId)",
                    new { workspaceId, credentialId }, cancellationToken: ct));
                if (!exists)
                {
                    throw new InvalidOperationException("The connector's credential was deleted during the run.");
                }
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("Another worker has been refreshing this credential's token for too long.");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct); // another worker is refreshing: use its token when it is done
        }
    }

    private async Task ReleaseAsync(DateTime lease)
    {
        try
        {
            await using var connection = await db.Service.OpenConnectionAsync(CancellationToken.None);
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE workspace_api_credentials SET refreshing_until = NULL WHERE workspace_id = @workspaceId AND id = @credentialId AND refreshing_until = @lease",
                new { workspaceId, credentialId, lease }));
        }
        catch (Npgsql.NpgsqlException)
        {
            // The lease expires by itself.
        }
    }
}
