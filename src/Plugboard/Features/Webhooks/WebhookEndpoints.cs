using Dapper;
using Microsoft.Extensions.Caching.Memory;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Security;

namespace Plugboard.Features.Webhooks;

/// <summary>Limits of the inbound endpoints (configuration keys PLUGBOARD_WEBHOOK_*).</summary>
public sealed record WebhookSettings(int MaxBodyBytes, int RatePerSecond, int RateBurst, TimeSpan SecretOverlap, long MaxBytesInFlight, TimeSpan BodyDeadline)
{
    public static WebhookSettings FromConfiguration(IConfiguration configuration)
    {
        var rate = Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_RATE_LIMIT", 200, 1, 1_000_000);
        return new WebhookSettings(
            Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_MAX_BYTES", 1024 * 1024, 1024, 25 * 1024 * 1024),
            rate,
            Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_RATE_BURST", rate * 5, 1, 5_000_000),
            TimeSpan.FromHours(Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_SECRET_OVERLAP_HOURS", 24, 0, 168)),
            (long)Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_MAX_INFLIGHT_MB", 256, 1, 16_384) << 20,
            TimeSpan.FromSeconds(Hosting.Settings.Int(configuration, "PLUGBOARD_WEBHOOK_BODY_SECONDS", 30, 1, 300)));
    }
}

/// <summary>A connector's endpoint as the receiver needs it: where events go, how to verify them, with what secrets.</summary>
public sealed record WebhookEndpoint(string WorkspaceId, Guid ConnectorId, long RowVersion, bool Active, WebhookSpec? Spec,
    string? Secret, string? PreviousSecret, DateTime? PreviousUntil)
{
    /// <summary>The secrets a request may be signed with now: the current one, and the previous one until its overlap ends.</summary>
    public IReadOnlyList<string> SecretsAt(DateTimeOffset now)
    {
        var secrets = new List<string>(2);
        if (Secret is not null)
        {
            secrets.Add(Secret);
        }
        if (PreviousSecret is not null && PreviousUntil is { } until && new DateTimeOffset(until, TimeSpan.Zero) > now)
        {
            secrets.Add(PreviousSecret);
        }
        return secrets;
    }
}

/// <summary>
/// Finds the endpoint of a token. A read returns the connector's row version; the manifest and the decrypted secrets
/// are read and parsed only when that version changed since this process last saw it. Requests use the cached
/// endpoint and the event writer stores their events only if the row version is still the same, so a disabled,
/// rotated or deleted endpoint takes effect at once.
/// </summary>
public sealed class WebhookEndpoints(Db db, KeyRing keys, Executions.ManifestCache manifests)
{
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 10_000 });

    private static string Unknown(string token) => "unknown:" + token;

    private sealed record Row(string WorkspaceId, Guid Id, long RowVersion, bool WebhookActive, string? Manifest, string? WebhookSecret,
        string? WebhookSecretPrevious, DateTime? WebhookSecretPreviousUntil);

    /// <summary>The endpoint as this process last read it, if it did: the writer checks it is still current.</summary>
    public WebhookEndpoint? Cached(string token) => _cache.Get<WebhookEndpoint>(token);

    public async Task<WebhookEndpoint?> FindAsync(string token, CancellationToken ct)
    {
        if (_cache.TryGetValue(Unknown(token), out _))
        {
            return null; // asked for moments ago and not found: a flood of made-up tokens does not reach the database
        }
        var cached = _cache.Get<WebhookEndpoint>(token);
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition(
            """
            SELECT workspace_id, id, row_version, webhook_active,
                   CASE WHEN row_version = @known THEN NULL ELSE manifest::text END AS manifest,
                   CASE WHEN row_version = @known THEN NULL ELSE webhook_secret END AS webhook_secret,
                   CASE WHEN row_version = @known THEN NULL ELSE webhook_secret_previous END AS webhook_secret_previous,
                   webhook_secret_previous_until
              FROM connectors WHERE webhook_token = @token
            """, new { token, known = cached?.RowVersion ?? -1 }, cancellationToken: ct));
        if (row is null)
        {
            // Tokens are random, so one unknown now will not be created in the next seconds.
            _cache.Remove(token);
            _cache.Set(Unknown(token), true, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(10) });
            return null;
        }
        if (cached is not null && cached.RowVersion == row.RowVersion)
        {
            return cached; // every update of the connector changes its row version
        }
        var aad = KeyRing.Aad(row.WorkspaceId, "connectors", row.Id, "webhook_secret");
        var spec = row.Manifest is null ? null : manifests.Get($"{row.Id}:{row.RowVersion}", row.Manifest).Manifest?.Webhooks;
        var endpoint = new WebhookEndpoint(row.WorkspaceId, row.Id, row.RowVersion, row.WebhookActive, spec,
            row.WebhookSecret is null ? null : keys.Decrypt(row.WebhookSecret, aad),
            row.WebhookSecretPrevious is null ? null : keys.Decrypt(row.WebhookSecretPrevious, aad),
            row.WebhookSecretPreviousUntil);
        _cache.Set(token, endpoint, new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = TimeSpan.FromMinutes(10) });
        return endpoint;
    }
}
