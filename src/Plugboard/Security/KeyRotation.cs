using Dapper;
using Plugboard.Data;

namespace Plugboard.Security;

/// <summary>
/// Re-encrypts every stored secret that is not under the ring's newest key, in small batches with
/// SKIP LOCKED so the API keeps serving (and other rotations can run) meanwhile.
/// </summary>
public static class KeyRotation
{
    public sealed record Progress(string Table, long Done, long Total);

    public static async Task<long> ReencryptAsync(Db db, KeyRing keys, Action<Progress> report, CancellationToken ct, int batchSize = 200)
    {
        long total = 0;
        total += await SweepAsync(db, keys, "workspace_api_credentials", "encrypted_payload", "key_id <> @current", batchSize, report, ct);
        total += await SweepAsync(db, keys, "connectors", "webhook_secret", "webhook_secret IS NOT NULL AND split_part(webhook_secret, ':', 2) <> @current", batchSize, report, ct);
        // A rotated-out secret keeps the associated data it was written with (the database moved it aside unchanged).
        total += await SweepAsync(db, keys, "connectors", "webhook_secret_previous",
            "webhook_secret_previous IS NOT NULL AND split_part(webhook_secret_previous, ':', 2) <> @current", batchSize, report, ct, aadColumn: "webhook_secret");
        // Only a connection still pending is ever decrypted again (by its callback); a finished one keeps its ciphertext
        // until it is pruned, and one under a key already removed must not stop the rotation.
        total += await SweepAsync(db, keys, "oauth_authorizations", "encrypted_payload", "status = 'pending' AND expires_at > now() AND split_part(encrypted_payload, ':', 2) <> @current", batchSize, report, ct);
        await Features.Health.KeyRingCanary.ReencryptAsync(db, keys, ct);
        return total;
    }

    private static async Task<long> SweepAsync(Db db, KeyRing keys, string table, string column, string stale, int batchSize, Action<Progress> report, CancellationToken ct,
        string? aadColumn = null)
    {
        long done = 0;
        await using (var counter = await db.Service.OpenConnectionAsync(ct))
        {
            var current = keys.CurrentKeyId;
            var remaining = await counter.ExecuteScalarAsync<long>(new CommandDefinition($"SELECT count(*) FROM {table} WHERE {stale}", new { current }, cancellationToken: ct));
            report(new Progress(table, 0, remaining));
            // Rows other transactions hold are skipped while there are others to do. Then each is waited for alone (a
            // transaction that waits holds no other row, so it cannot deadlock), so the rotation does not end with a row
            // still under an old key. NO KEY UPDATE: rows that reference it (executions, events) can still be inserted.
            var skipLocked = true;
            while (true)
            {
                // The ring may be reloaded meanwhile (a file re-read): a newer key then becomes the one rows must have.
                current = keys.CurrentKeyId;
                await using var tx = await counter.BeginTransactionAsync(ct);
                var rows = (await counter.QueryAsync<(string WorkspaceId, Guid Id, string Value)>(new CommandDefinition(
                    $"SELECT workspace_id, id, {column} FROM {table} WHERE {stale} ORDER BY workspace_id, id LIMIT @take FOR NO KEY UPDATE{(skipLocked ? " SKIP LOCKED" : "")}",
                    new { current, take = skipLocked ? batchSize : 1 }, tx, cancellationToken: ct))).AsList();
                if (rows.Count == 0)
                {
                    if (skipLocked && await counter.ExecuteScalarAsync<bool>(new CommandDefinition($"SELECT EXISTS (SELECT FROM {table} WHERE {stale})", new { current }, tx, cancellationToken: ct)))
                    {
                        skipLocked = false;
                        continue;
                    }
                    break;
                }
                foreach (var row in rows)
                {
                    var aad = KeyRing.Aad(row.WorkspaceId, table, row.Id, aadColumn ?? column);
                    var reencrypted = keys.Encrypt(keys.Decrypt(row.Value, aad), aad);
                    var keyColumn = table == "workspace_api_credentials" ? ", key_id = @keyId" : "";
                    await counter.ExecuteAsync(new CommandDefinition(
                        $"UPDATE {table} SET {column} = @reencrypted{keyColumn} WHERE workspace_id = @WorkspaceId AND id = @Id",
                        new { reencrypted, keyId = KeyRing.KeyIdOf(reencrypted), row.WorkspaceId, row.Id }, tx, cancellationToken: ct));
                }
                await tx.CommitAsync(ct);
                done += rows.Count;
                report(new Progress(table, done, Math.Max(done, remaining)));
                skipLocked = true; // the held row is done: back to skipping
            }
        }
        return done;
    }
}
