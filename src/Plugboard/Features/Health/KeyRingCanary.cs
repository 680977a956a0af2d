using Dapper;
using Plugboard.Data;
using Plugboard.Security;

namespace Plugboard.Features.Health;

/// <summary>
/// A known value encrypted once with the ring of the first process that starts on a database: every later process
/// (and every /readyz) decrypts it, so a node with a wrong or incomplete key ring is not ready, rather than failing
/// at its first execution. Key rotation re-encrypts it with the other secrets.
/// </summary>
public sealed class KeyRingCanary(Db db, KeyRing keys, ILogger<KeyRingCanary> logger) : IHostedService
{
    private const string Plaintext = "plugboard key ring canary";
    private static readonly string Aad = KeyRing.Aad("platform", "key_ring_canary", Guid.Empty, "ciphertext");

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await EnsureAsync(db, keys, cancellationToken);
        }
        catch (Npgsql.NpgsqlException e)
        {
            // Before migrations (serve waits for them) or while the database is away: /readyz says so meanwhile.
            logger.LogWarning("Could not write the key ring canary yet: {Error}", e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public static async Task EnsureAsync(Db db, KeyRing keys, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "INSERT INTO key_ring_canary (id, ciphertext, key_id) VALUES (1, @ciphertext, @keyId) ON CONFLICT (id) DO NOTHING",
            new { ciphertext = keys.Encrypt(Plaintext, Aad), keyId = keys.CurrentKeyId }, cancellationToken: ct));
    }

    /// <summary>Re-encrypts the canary with the ring's current key (key rotation).</summary>
    public static async Task ReencryptAsync(Db db, KeyRing keys, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("UPDATE key_ring_canary SET ciphertext = @ciphertext, key_id = @keyId WHERE id = 1",
            new { ciphertext = keys.Encrypt(Plaintext, Aad), keyId = keys.CurrentKeyId }, cancellationToken: ct));
    }

    /// <summary>Null when this process's ring decrypts the canary; otherwise what is wrong, worded for operators.</summary>
    public static async Task<string?> ProblemAsync(Db db, KeyRing keys, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        var ciphertext = await connection.ExecuteScalarAsync<string?>(new CommandDefinition("SELECT ciphertext FROM key_ring_canary WHERE id = 1", cancellationToken: ct));
        if (ciphertext is null)
        {
            return "the key ring canary has not been written yet (it is written when a process starts)";
        }
        try
        {
            return keys.Decrypt(ciphertext, Aad) == Plaintext ? null : "the key ring canary decrypts to the wrong value";
        }
        catch (SecretDecryptionException e)
        {
            return $"this process's key ring cannot decrypt the canary ({e.Message}): it does not hold the keys the database was written with";
        }
    }
}
