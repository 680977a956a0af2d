using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Plugboard.Data;

namespace Plugboard.Http;

/// <summary>
/// Creates accept an Idempotency-Key: the first request's answer is stored in the same transaction as the
/// created row, and a retry with the same key and the same request gets that answer again instead of a second row.
/// "The same request" is a SHA-256 fingerprint of the method, path, query and body bytes exactly as sent (secrets
/// included, so they are only ever stored hashed): the same key with any other request answers 422.
/// </summary>
public static class Idempotency
{
    public const string Header = "Idempotency-Key";

    /// <summary>Claims the key for this request; returns the stored answer when the key was used before.</summary>
    public static async Task<IResult?> ReplayOrClaimAsync(HttpContext http, RequestDb db, CancellationToken ct)
    {
        var key = http.Request.Headers[Header].ToString();
        if (key.Length == 0)
        {
            return null;
        }
        if (key.Length > 255 || key.Any(char.IsControl))
        {
            throw Problems.BadRequest("Idempotency-Key must be 1 to 255 printable characters.");
        }
        var hash = await FingerprintAsync(http.Request, ct);
        var claimed = await db.ExecuteAsync(
            """
            INSERT INTO idempotency_keys (user_id, key, workspace_id, request_hash)
            VALUES (app_user_id(), @key, @workspaceId, @hash)
            ON CONFLICT (user_id, key) DO NOTHING
            """, new { key, workspaceId = db.WorkspaceId, hash }, ct);
        if (claimed == 1)
        {
            http.Items[Header] = key;
            return null;
        }
        var stored = await db.QuerySingleOrDefaultAsync<StoredAnswer>(
            "SELECT request_hash, status_code, location, response::text AS response FROM idempotency_keys WHERE user_id = app_user_id() AND key = @key",
            new { key }, ct) ?? throw Problems.Conflict("The Idempotency-Key is in use by a request still running; retry shortly.");
        if (!CryptographicOperations.FixedTimeEquals(stored.RequestHash, hash))
        {
            throw new ProblemException(422, "idempotency-key-reused", "Idempotency key reused",
                "This Idempotency-Key was already used for a different request. Use a new key for a new request.");
        }
        if (stored.StatusCode is not { } status)
        {
            throw Problems.Conflict("The Idempotency-Key is in use by a request still running; retry shortly.");
        }
        http.Response.Headers["Idempotent-Replayed"] = "true";
        if (stored.Location is not null)
        {
            http.Response.Headers.Location = stored.Location;
        }
        return Results.Text(stored.Response ?? "null", "application/json", Encoding.UTF8, status);
    }

    /// <summary>Answers 201 Created, storing the answer under the request's Idempotency-Key if it has one.</summary>
    public static async Task<IResult> CreatedAsync<T>(HttpContext http, RequestDb db, string location, T body, CancellationToken ct)
    {
        await StoreAsync(http, db, 201, location, body, ct);
        return TypedResults.Created(location, body);
    }

    /// <summary>Answers 202 Accepted (work queued), storing the answer under the request's Idempotency-Key if it has one.</summary>
    public static async Task<IResult> AcceptedAsync<T>(HttpContext http, RequestDb db, string location, T body, CancellationToken ct)
    {
        await StoreAsync(http, db, 202, location, body, ct);
        return TypedResults.Accepted(location, body);
    }

    private static async Task StoreAsync<T>(HttpContext http, RequestDb db, int status, string location, T body, CancellationToken ct)
    {
        if (http.Items[Header] is string key)
        {
            await db.ExecuteAsync(
                "UPDATE idempotency_keys SET status_code = @status, location = @location, response = @response::jsonb WHERE user_id = app_user_id() AND key = @key",
                new { key, status, location, response = JsonSerializer.Serialize(body, ApiJson.Options) }, ct);
        }
    }

    private static async Task<byte[]> FingerprintAsync(HttpRequest request, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes($"{request.Method} {request.Path}{request.QueryString}\n"));
        if (request.Body.CanSeek)
        {
            request.Body.Position = 0;
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await request.Body.ReadAsync(buffer, ct)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }
        }
        return sha.GetHashAndReset();
    }

    private sealed record StoredAnswer(byte[] RequestHash, int? StatusCode, string? Location, string? Response);
}
