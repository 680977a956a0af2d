using System.Security.Cryptography;
using System.Text.Json;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Features.Connectors;
using Plugboard.Features.Credentials;
using Plugboard.Features.Executions;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Webhooks;

/// <summary>A connector's inbound endpoint. <see cref="Url"/> is absolute when PLUGBOARD_PUBLIC_URL is set.</summary>
public sealed record WebhookInfo(string Url, bool Active, string? Verify, string? SecretSource, bool SecretSet, DateTime? PreviousSecretValidUntil,
    long FailedVerifications, string? LastFailure, DateTime? LastFailureAt);

/// <param name="Secret">For a provider-issued secret (Zoom, Slack, GitHub): the secret the provider shows you. Leave it out
/// for a generated one.</param>
/// <param name="OverlapHours">How long the replaced secret stays valid (default PLUGBOARD_WEBHOOK_SECRET_OVERLAP_HOURS).</param>
public sealed record SetWebhookSecretRequest(string? Secret = null, int? OverlapHours = null);

/// <summary>A new secret; <see cref="Secret"/> is shown in this answer only, and only when Plugboard generated it.</summary>
public sealed record WebhookSecretResult(string? Secret, DateTime? PreviousSecretValidUntil);

public sealed record WebhookEvent(Guid Id, string EventType, string? ExternalId, string Verification, bool Processed, DateTime? ProcessedAt, int Attempts,
    string? Error, string? Note, JsonElement? Result, DateTime ReceivedAt, JsonElement? Payload = null, JsonElement? Headers = null);

/// <summary>Replays the events received in [since, until) (optionally of one type, or only unprocessed ones), oldest first, at most <see cref="Limit"/>.</summary>
public sealed record ReplayEventsRequest(DateTime? Since = null, DateTime? Until = null, string? EventType = null, bool? Processed = null, int? Limit = null);

/// <summary>The webhook of a connector: its endpoint and secret, its events, replays.</summary>
public static class WebhooksApi
{
    public static readonly string[] Verifications = ["standard", "github", "zoom", "slack", "graph", "hmac"];

    public static void Map(RouteGroupBuilder workspace)
    {
        var webhook = workspace.MapGroup("/connectors/{connectorId:guid}/webhook").WithTags("Webhooks");
        webhook.MapGet("", Get).Produces<WebhookInfo>();
        webhook.MapPost("/secret", SetSecret).Produces<WebhookSecretResult>();
        webhook.MapGet("/events", List).Produces<Page<WebhookEvent>>();
        webhook.MapGet("/events/{eventId:guid}", GetEvent).Produces<WebhookEvent>();
        webhook.MapPost("/events/{eventId:guid}/replay", Replay).Produces<WebhookEvent>(202);
        webhook.MapPost("/events/replay", ReplayMany).Produces<ReplayedEvents>(202);
    }

    public sealed record ReplayedEvents(int Replayed);

    private sealed record EndpointRow(string WebhookUrl, bool WebhookActive, bool WebhookSecretSet, DateTime? WebhookSecretPreviousUntil, string Manifest,
        long? FailedVerifications, string? LastFailure, DateTime? LastFailureAt);

    private static async Task<IResult> Get(Guid connectorId, RequestDb db, OAuthSettings urls, HttpContext http, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<EndpointRow>(
            """
            SELECT c.webhook_url, c.webhook_active, c.webhook_secret_set, c.webhook_secret_previous_until, c.manifest::text AS manifest,
                   f.failed_verifications, f.last_failure, f.last_failure_at
              FROM connectors c
              LEFT JOIN connector_webhook_failures f ON f.workspace_id = c.workspace_id AND f.connector_id = c.id
             WHERE c.id = @connectorId
            """, new { connectorId }, ct) ?? throw Problems.NotFound("The connector");
        var spec = Spec(row.Manifest);
        return TypedResults.Ok(new WebhookInfo(urls.Absolute(http.Request, row.WebhookUrl), row.WebhookActive, spec?.Verify, spec?.Secret, row.WebhookSecretSet,
            row.WebhookSecretPreviousUntil, row.FailedVerifications ?? 0, row.LastFailure, row.LastFailureAt));
    }

    private static WebhookSpec? Spec(string manifest) => ManifestParser.Parse(JsonColumns.Node(manifest)).Manifest?.Webhooks;

    /// <summary>Creates or rotates the signing secret; the replaced one stays valid for the overlap (one previous secret
    /// is kept: rotating again within the overlap ends the first one's). No Idempotency-Key replay: it would store the
    /// answer, and with it a generated secret, in the clear.</summary>
    private static async Task<IResult> SetSecret(Guid connectorId, SetWebhookSecretRequest body, RequestDb db, KeyRing keys, WebhookSettings settings, CancellationToken ct)
    {
        var connector = await ConnectorsApi.Find(db, connectorId, ct);
        db.RequireRole("admin", "set webhook secrets");
        var spec = Spec(connector.Manifest)
                   ?? throw Problems.Invalid("The connector's manifest has no webhooks section: add one (verify: …) before setting a secret.", "/secret");
        string secret;
        if (spec.Secret == "provided")
        {
            secret = body.Secret is { Length: >= 8 and <= 1024 } given && given.Trim() == given
                ? given
                : throw Problems.Invalid($"This connector verifies {spec.Verify} webhooks with the secret the provider issues: send it as secret (8 to 1024 characters, no surrounding spaces).", "/secret");
            if (spec.Verify == "standard" && !IsStandardSecret(secret))
            {
                throw Problems.Invalid("A Standard Webhooks secret is whsec_ followed by the base64 of at least 24 random bytes.", "/secret");
            }
        }
        else
        {
            secret = body.Secret is null
                ? "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))
                : throw Problems.Invalid("Plugboard generates this connector's signing secret (webhooks.secret is generated): leave secret out.", "/secret");
        }
        var overlap = body.OverlapHours is null ? settings.SecretOverlap
            : body.OverlapHours is >= 0 and <= 168 ? TimeSpan.FromHours(body.OverlapHours.Value)
            : throw Problems.Invalid("overlap_hours must be between 0 and 168.", "/overlap_hours");
        var encrypted = keys.Encrypt(secret, KeyRing.Aad(db.WorkspaceId!, "connectors", connectorId, "webhook_secret"));
        var until = await db.QuerySingleOrDefaultAsync<DateTime?>(
            """
            UPDATE connectors SET webhook_secret = @encrypted,
                   webhook_secret_previous_until = CASE WHEN webhook_secret_set THEN clock_timestamp() + @overlap END
             WHERE id = @connectorId
            RETURNING webhook_secret_previous_until
            """, new { connectorId, encrypted, overlap }, ct);
        await Audit.WriteAsync(db, "connector.webhook_secret_set", "connector", connectorId.ToString(), new { source = spec.Secret, previous_valid_until = until }, ct);
        return TypedResults.Ok(new WebhookSecretResult(spec.Secret == "generated" ? secret : null, until));
    }

    private static bool IsStandardSecret(string secret)
    {
        try
        {
            return secret.StartsWith("whsec_", StringComparison.Ordinal) && Convert.FromBase64String(secret[6..]).Length >= 24;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private sealed record EventRow(Guid Id, string EventType, string? ExternalId, string Verification, bool Processed, DateTime? ProcessedAt, int Attempts,
        string? Error, string? Note, string? Result, DateTime ReceivedAt, string? Payload, string? Headers)
    {
        public WebhookEvent ToEvent() => new(Id, EventType, ExternalId, Verification, Processed, ProcessedAt, Attempts, Error, Note,
            Result is null ? null : JsonColumns.Element(Result), ReceivedAt,
            Payload is null ? null : JsonColumns.Element(Payload), Headers is null ? null : JsonColumns.Element(Headers));
    }

    private const string SummaryColumns = "id, event_type, external_id, verification, processed, processed_at, attempts, error, note, result::text AS result, received_at";

    internal static async Task<IResult> List(Guid connectorId, RequestDb db, string? type, bool? processed, string? verification, DateTime? since, DateTime? until,
        int? limit, string? cursor, CancellationToken ct)
    {
        await ConnectorsApi.Find(db, connectorId, ct);
        if (verification is not null && !Verifications.Contains(verification))
        {
            throw Problems.BadRequest($"verification must be one of: {string.Join(", ", Verifications)}.");
        }
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<EventRow>(
            $"""
            SELECT {SummaryColumns}, NULL AS payload, NULL AS headers FROM connector_webhook_events
             WHERE connector_id = @connectorId AND (@type::text IS NULL OR event_type = @type) AND (@processed::boolean IS NULL OR processed = @processed)
               AND (@verification::text IS NULL OR split_part(verification, ' ', 1) = @verification)
               AND (@since::timestamptz IS NULL OR received_at >= @since) AND (@until::timestamptz IS NULL OR received_at < @until)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY workspace_id, connector_id, id DESC LIMIT @take
            """, new { connectorId, type, processed, verification, since, until, after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<WebhookEvent>(page.Items.Select(r => r.ToEvent()).ToList(), page.NextCursor));
    }

    private static async Task<EventRow> FindEventAsync(RequestDb db, Guid connectorId, Guid eventId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<EventRow>(
            $"SELECT {SummaryColumns}, payload::text AS payload, headers::text AS headers FROM connector_webhook_events WHERE connector_id = @connectorId AND id = @eventId",
            new { connectorId, eventId }, ct) ?? throw Problems.NotFound("The event");

    private static async Task<IResult> GetEvent(Guid connectorId, Guid eventId, RequestDb db, CancellationToken ct) =>
        TypedResults.Ok((await FindEventAsync(db, connectorId, eventId, ct)).ToEvent());

    private static async Task<IResult> Replay(Guid connectorId, Guid eventId, RequestDb db, CancellationToken ct)
    {
        await FindEventAsync(db, connectorId, eventId, ct);
        db.RequireRole("admin", "replay webhook events");
        await db.ExecuteAsync(
            $"""
            WITH e AS (
                UPDATE connector_webhook_events SET processed = false, processed_at = NULL, attempts = 0, error = NULL, note = 'Replayed.', result = NULL
                 WHERE connector_id = @connectorId AND id = @eventId
                RETURNING workspace_id, connector_id, id)
            {WebhookJob.InsertForEventsSql} FROM e GROUP BY e.workspace_id, e.connector_id
            """, new { connectorId, eventId }, ct);
        await Audit.WriteAsync(db, "connector.webhook_replayed", "connector", connectorId.ToString(), new { event_id = eventId }, ct);
        return TypedResults.Accepted($"/v1/workspaces/{db.WorkspaceId}/connectors/{connectorId}/webhook/events/{eventId}",
            (await FindEventAsync(db, connectorId, eventId, ct)).ToEvent());
    }

    private static async Task<IResult> ReplayMany(Guid connectorId, ReplayEventsRequest body, RequestDb db, CancellationToken ct)
    {
        await ConnectorsApi.Find(db, connectorId, ct);
        db.RequireRole("admin", "replay webhook events");
        var limit = body.Limit is null ? 1000 : body.Limit is >= 1 and <= 1000 ? body.Limit.Value : throw Problems.Invalid("limit must be between 1 and 1000.", "/limit");
        if (body.Since is { } s && body.Until is { } u && u <= s)
        {
            throw Problems.Invalid("until must be after since.", "/until");
        }
        var replayed = await db.QuerySingleOrDefaultAsync<int>(
            $"""
            WITH chosen AS (
                SELECT workspace_id, id FROM connector_webhook_events
                 WHERE connector_id = @connectorId AND (@type::text IS NULL OR event_type = @type) AND (@processed::boolean IS NULL OR processed = @processed)
                   AND (@since::timestamptz IS NULL OR received_at >= @since) AND (@until::timestamptz IS NULL OR received_at < @until)
                 ORDER BY id LIMIT @limit FOR UPDATE),
            e AS (
                UPDATE connector_webhook_events w SET processed = false, processed_at = NULL, attempts = 0, error = NULL, note = 'Replayed.', result = NULL
                  FROM chosen WHERE w.workspace_id = chosen.workspace_id AND w.id = chosen.id
                RETURNING w.workspace_id, w.connector_id, w.id),
            jobs AS ({WebhookJob.InsertForEventsSql} FROM e GROUP BY e.workspace_id, e.connector_id)
            SELECT count(*)::int FROM e
            """, new { connectorId, type = body.EventType, processed = body.Processed, since = body.Since, until = body.Until, limit }, ct);
        await Audit.WriteAsync(db, "connector.webhook_replayed", "connector", connectorId.ToString(), new { replayed, since = body.Since, until = body.Until, type = body.EventType }, ct);
        return TypedResults.Accepted((string?)null, new ReplayedEvents(replayed));
    }
}
