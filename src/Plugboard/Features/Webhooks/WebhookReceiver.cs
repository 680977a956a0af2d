using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Microsoft.AspNetCore.Http.Features;
using Npgsql;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Webhooks;

/// <summary>
/// <c>POST /v1/hooks/{token}</c>, anonymous: finds the endpoint (404 unknown, 410 switched off), takes a token of its
/// bucket (429), reserves room for the body among all requests' (503), reads the raw body within its deadline and
/// limit (408, 413), verifies the signature over the raw bytes (401, counted per endpoint), then parses the body,
/// answers the provider's URL challenge or commits each event with its processing job (<see cref="WebhookEventWriter"/>)
/// before answering 2xx. A repeated event id is acknowledged without a second event. A failure to store answers 503,
/// so the provider retries.
/// </summary>
public sealed partial class WebhookReceiver(WebhookEndpoints endpoints, WebhookEventWriter writer, WebhookSettings settings, Db db, ILogger<WebhookReceiver> logger)
    : IDisposable
{
    public const string Path = "/v1/hooks/{token}";

    public const string MeterName = "Plugboard.Webhooks";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Received = Meter.CreateCounter<long>("plugboard.webhooks.received", "{event}", "Events verified and stored.");
    private static readonly Counter<long> Duplicates = Meter.CreateCounter<long>("plugboard.webhooks.duplicates", "{event}", "Repeated event ids acknowledged without storing.");
    private static readonly Counter<long> Refused = Meter.CreateCounter<long>("plugboard.webhooks.failed_verifications", "{request}", "Requests whose signature did not verify.");

    private readonly RateLimitBuckets _buckets = new(settings.RatePerSecond, settings.RateBurst, "This webhook endpoint is receiving requests");

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapPost(Path, (string token, HttpContext http, WebhookReceiver receiver, CancellationToken ct) => receiver.ReceiveAsync(token, http, ct))
            .AllowAnonymous().WithTags("Webhooks").WithMetadata(new RawBodyMetadata())
            .WithSummary("Receive a webhook").WithDescription("The endpoint a provider posts events to (a connector's webhook_url). Verified with the connector's webhooks settings.")
            .Produces(200).Produces(202).ProducesProblem(400).ProducesProblem(401).ProducesProblem(404).ProducesProblem(408).ProducesProblem(410)
            .ProducesProblem(413).ProducesProblem(415).ProducesProblem(429).ProducesProblem(503);
    }

    /// <summary>What a verified request comes to: a challenge to answer, events to store, or why it was refused.</summary>
    private sealed record Verdict(IResult? Answer, List<IncomingEvent>? Events, string Verification, string? Failure);

    public async Task<IResult> ReceiveAsync(string token, HttpContext http, CancellationToken ct)
    {
        if (!TokenFormat().IsMatch(token))
        {
            throw Problems.NotFound("The webhook endpoint");
        }
        // The cached endpoint is used first; anything but events to store is decided on a fresh read.
        var endpoint = endpoints.Cached(token);
        var fresh = false;
        if (endpoint is not { Active: true, Spec: not null })
        {
            endpoint = await endpoints.FindAsync(token, ct);
            fresh = true;
        }
        CheckOpen(endpoint);
        _buckets.Take(http, endpoint.ConnectorId.ToString());
        var budget = ReserveBodyBudget(http.Request.ContentLength);
        try
        {
            return await ReceiveBodyAsync(token, endpoint, fresh, http, ct);
        }
        finally
        {
            Interlocked.Add(ref _bytesInFlight, -budget);
        }
    }

    private async Task<IResult> ReceiveBodyAsync(string token, WebhookEndpoint endpoint, bool fresh, HttpContext http, CancellationToken ct)
    {
        var body = await ReadBodyAsync(http, ct);
        var receivedAt = DateTimeOffset.UtcNow;
        var headers = http.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        while (true)
        {
            var verdict = await VerifyAsync(endpoint, http, headers, body, receivedAt);
            if (verdict.Events is { } events)
            {
                var rows = events.Select(e => new WebhookEventWriter.Row(Guid.CreateVersion7(), endpoint.WorkspaceId, endpoint.ConnectorId, endpoint.RowVersion, e, verdict.Verification))
                    .ToList();
                WebhookEventWriter.Outcome outcome;
                try
                {
                    outcome = await writer.WriteAsync(rows, ct);
                }
                catch (PostgresException x) when (x.SqlState.StartsWith("22", StringComparison.Ordinal))
                {
                    throw Problems.BadRequest("The body holds a value PostgreSQL cannot store (such as a \\u0000 or an unpaired surrogate in a string).");
                }
                catch (Exception x) when (x is not OperationCanceledException)
                {
                    // Not stored: say so with a status every provider retries.
                    logger.LogWarning("Could not store webhook events of connector {ConnectorId}: {Error}", endpoint.ConnectorId, x.Message);
                    throw Unavailable("Not stored", "The event could not be stored; retry (Retry-After).", 5);
                }
                if (outcome.Current)
                {
                    Received.Add(outcome.Stored);
                    Duplicates.Add(events.Count - outcome.Stored);
                    return TypedResults.Json(new { received = events.Count, stored = outcome.Stored, duplicates = events.Count - outcome.Stored },
                        statusCode: endpoint.Spec!.Verify == "graph" ? 202 : 200);
                }
            }
            if (!fresh)
            {
                // Verified against what this process had cached: read the endpoint again and decide on that.
                var reread = await endpoints.FindAsync(token, ct);
                CheckOpen(reread);
                (endpoint, fresh) = (reread, true);
                continue;
            }
            if (verdict.Answer is { } answer)
            {
                return answer;
            }
            if (verdict.Failure is { } failure)
            {
                throw await RefuseAsync(endpoint, failure, ct);
            }
            throw Unavailable("Endpoint changing", "The endpoint changed while this request was verified: retry.", 1);
        }
    }

    private static void CheckOpen([System.Diagnostics.CodeAnalysis.NotNull] WebhookEndpoint? endpoint)
    {
        if (endpoint is null)
        {
            throw Problems.NotFound("The webhook endpoint");
        }
        if (!endpoint.Active || endpoint.Spec is null)
        {
            throw new ProblemException(410, "webhook-disabled", "Webhook endpoint switched off",
                "This endpoint does not accept events (the connector's webhook is off, or its manifest has no webhooks section).");
        }
    }

    private static async Task<Verdict> VerifyAsync(WebhookEndpoint endpoint, HttpContext http, IReadOnlyDictionary<string, string> headers, byte[] body,
        DateTimeOffset receivedAt)
    {
        var spec = endpoint.Spec!;
        if (spec.Verify == "graph" && http.Request.Query.TryGetValue("validationToken", out var validationToken))
        {
            // Graph's subscription validation: echo the (URL-decoded) token as text/plain, at once; nothing is stored.
            var text = validationToken.ToString();
            if (text.Length is 0 or > 4096)
            {
                throw Problems.BadRequest("validationToken must be 1 to 4096 characters.");
            }
            http.Response.Headers.XContentTypeOptions = "nosniff";
            return new Verdict(TypedResults.Text(text, "text/plain", Encoding.UTF8, 200), null, "", null);
        }
        var secrets = endpoint.SecretsAt(receivedAt);
        if (secrets.Count == 0)
        {
            return Refusal("The endpoint has no signing secret yet: set one with POST …/connectors/{id}/webhook/secret.");
        }
        if (spec.Verify == "graph")
        {
            // Graph signs nothing: its secret is the clientState inside the body, which must be read to be checked.
            using var notifications = Parse(body, http.Request.ContentType);
            return await GraphEventsAsync(spec, notifications.RootElement, headers, secrets);
        }
        var verdict = WebhookVerifier.For(spec).Verify(new WebhookRequest(headers, body, receivedAt), secrets);
        if (!verdict.Valid)
        {
            return Refusal(verdict.Failure!);
        }
        using var document = Parse(body, http.Request.ContentType); // only once the raw bytes verified
        var root = document.RootElement;
        var verification = spec.Verify + (verdict.SecretIndex > 0 ? " (previous secret)" : "");
        if (Challenge(spec.Verify, root, secrets[verdict.SecretIndex]) is { } answer)
        {
            return new Verdict(answer, null, verification, null);
        }
        if (spec.Verify == "slack" && root.ValueKind == JsonValueKind.Object && root.TryGetProperty("token", out _))
        {
            // Slack's legacy verification token is a secret of the app: it is not kept with the event.
            using var withoutToken = Without(root, "token");
            return new Verdict(null, [await WebhookEvents.DescribeAsync(spec, withoutToken.RootElement, body, headers, verdict.EventId)], verification, null);
        }
        return new Verdict(null, [await WebhookEvents.DescribeAsync(spec, root, body, headers, verdict.EventId)], verification, null);
    }

    /// <summary>The object without one of its properties, as a document of its own.</summary>
    private static JsonDocument Without(JsonElement element, string property)
    {
        var node = System.Text.Json.Nodes.JsonObject.Create(element)!;
        node.Remove(property);
        return JsonDocument.Parse(node.ToJsonString());
    }

    private static Verdict Refusal(string failure) => new(null, null, "", failure);

    /// <summary>The body, at most <see cref="WebhookSettings.MaxBodyBytes"/>, else 413 (read and discarded first when
    /// small enough, so the sender reads the answer rather than a reset connection).</summary>
    private async Task<byte[]> ReadBodyAsync(HttpContext http, CancellationToken ct)
    {
        var limit = settings.MaxBodyBytes;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = Math.Max(limit, Hosting.PlugboardApp.MaxDrainedBodyBytes);
        }
        if (http.Request.ContentLength > limit)
        {
            await Hosting.PlugboardApp.DrainAsync(http);
            throw TooLarge();
        }
        // The body must arrive within the deadline: a sender trickling bytes cannot hold a buffer for long.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(settings.BodyDeadline);
        try
        {
            if (http.Request.ContentLength is { } length and <= 64 * 1024)
            {
                // The usual case: a small body of announced size, read into an array of exactly that size.
                var exact = new byte[length];
                await http.Request.Body.ReadExactlyAsync(exact, deadline.Token);
                return exact;
            }
            // Larger or unannounced: the buffer grows only as bytes arrive.
            using var buffer = new MemoryStream();
            var chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                int read;
                while ((read = await http.Request.Body.ReadAsync(chunk, deadline.Token)) > 0)
                {
                    if (buffer.Length + read > limit)
                    {
                        await Hosting.PlugboardApp.DrainAsync(http);
                        throw TooLarge();
                    }
                    buffer.Write(chunk, 0, read);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(chunk);
            }
            return buffer.ToArray();
        }
        catch (EndOfStreamException)
        {
            throw Problems.BadRequest("The body ended before its Content-Length.");
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new ProblemException(408, "request-timeout", "Request timeout", $"The body did not arrive within {settings.BodyDeadline.TotalSeconds:0} s.");
        }
    }

    private long _bytesInFlight;

    /// <summary>Bodies being read by all webhook requests together stay within PLUGBOARD_WEBHOOK_MAX_INFLIGHT_MB; beyond
    /// it a request answers 503 (retried by providers) rather than adding to memory.</summary>
    private long ReserveBodyBudget(long? contentLength)
    {
        var reserve = Math.Min(contentLength ?? settings.MaxBodyBytes, settings.MaxBodyBytes);
        if (Interlocked.Add(ref _bytesInFlight, reserve) > settings.MaxBytesInFlight)
        {
            Interlocked.Add(ref _bytesInFlight, -reserve);
            throw Unavailable("Busy", "Too many webhook bodies are being received at once; retry (Retry-After).", 1);
        }
        return reserve;
    }

    private static ProblemException Unavailable(string title, string detail, int retryAfterSeconds) =>
        new(503, "unavailable", title, detail) { Headers = { ["Retry-After"] = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) } };

    private ProblemException TooLarge() => new(413, "payload-too-large", "Payload too large", $"Webhook bodies are limited to {settings.MaxBodyBytes / 1024} KiB.");

    /// <summary>The body as JSON, at most 64 levels deep, whose every string is valid text and every number readable
    /// (else 400: such values would fail later, in templates or in PostgreSQL).</summary>
    private static JsonDocument Parse(byte[] body, string? contentType)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException)
        {
            throw contentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true
                ? new ProblemException(415, "unsupported-media-type", "Unsupported media type", "Form-encoded webhooks are not supported: configure the provider to send JSON.")
                : Problems.BadRequest("The body is not JSON (at most 64 levels deep).");
        }
        string? problem;
        try
        {
            problem = Unstorable(document.RootElement);
        }
        catch (InvalidOperationException)
        {
            problem = "The body holds a name that is not valid Unicode text (an unpaired surrogate or invalid UTF-8).";
        }
        if (problem is not null)
        {
            document.Dispose();
            throw Problems.BadRequest(problem);
        }
        return document;
    }

    private static string? Unstorable(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if ((Text(property.Name) ?? Unstorable(property.Value)) is { } problem)
                    {
                        return problem;
                    }
                }
                return null;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    if (Unstorable(item) is { } problem)
                    {
                        return problem;
                    }
                }
                return null;
            case JsonValueKind.String:
                return Text(element.GetString()!); // throws InvalidOperationException on an unpaired surrogate or invalid UTF-8
            case JsonValueKind.Number:
                return element.TryGetDecimal(out _) || (element.TryGetDouble(out var d) && double.IsFinite(d)) ? null : "The body holds a number out of range.";
            default:
                return null;
        }
    }

    private static string? Text(string text) =>
        text.Contains('\0', StringComparison.Ordinal) ? "The body holds text PostgreSQL cannot store (a \\u0000 in a string)." : null;

    /// <summary>Zoom's and Slack's URL challenges, answered only once the request verified.</summary>
    private static IResult? Challenge(string scheme, JsonElement root, string secret)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        if (scheme == "zoom" && root.TryGetProperty("event", out var zoomEvent) && zoomEvent.ValueKind == JsonValueKind.String
            && zoomEvent.GetString() == "endpoint.url_validation")
        {
            var plain = root.TryGetProperty("payload", out var payload) && payload.ValueKind == JsonValueKind.Object
                        && payload.TryGetProperty("plainToken", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "";
            if (plain.Length is 0 or > 1024)
            {
                throw Problems.BadRequest("endpoint.url_validation needs payload.plainToken (at most 1024 characters).");
            }
            var (plainToken, encryptedToken) = VersionZeroVerifier.ZoomValidation(plain, secret);
            return TypedResults.Json(new Dictionary<string, string> { ["plainToken"] = plainToken, ["encryptedToken"] = encryptedToken });
        }
        if (scheme == "slack" && root.TryGetProperty("type", out var slackType) && slackType.ValueKind == JsonValueKind.String
            && slackType.GetString() == "url_verification")
        {
            var challenge = root.TryGetProperty("challenge", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
            return challenge.Length is 0 or > 1024
                ? throw Problems.BadRequest("url_verification needs a challenge (at most 1024 characters).")
                : TypedResults.Json(new Dictionary<string, string> { ["challenge"] = challenge });
        }
        return null;
    }

    /// <summary>Graph: every notification in value[] must carry the endpoint's clientState; each becomes one event.</summary>
    private static async Task<Verdict> GraphEventsAsync(Engine.Manifests.WebhookSpec spec, JsonElement root, IReadOnlyDictionary<string, string> headers,
        IReadOnlyList<string> secrets)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("value", out var value) || value.ValueKind != JsonValueKind.Array
            || value.GetArrayLength() is 0 or > 1000)
        {
            return Refusal("A Graph notification body is {\"value\": [ … ]} with 1 to 1000 notifications.");
        }
        var events = new List<IncomingEvent>();
        var previous = false;
        foreach (var item in value.EnumerateArray())
        {
            var state = item.ValueKind == JsonValueKind.Object && item.TryGetProperty("clientState", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            if (GraphClientState.Verify(state, secrets) is not { } index)
            {
                return Refusal("A notification's clientState does not match the endpoint's secret.");
            }
            previous |= index > 0;
            // The clientState is the endpoint's secret: it is not kept, hashed or shown to templates.
            using var kept = Without(item, "clientState");
            events.Add(await WebhookEvents.DescribeAsync(spec, kept.RootElement, Encoding.UTF8.GetBytes(kept.RootElement.GetRawText()), headers, null));
        }
        return new Verdict(null, events, "graph" + (previous ? " (previous secret)" : ""), null);
    }

    /// <summary>Counts the failure on the endpoint (its operator sees misconfiguration) and answers 401.</summary>
    private async Task<ProblemException> RefuseAsync(WebhookEndpoint endpoint, string failure, CancellationToken ct)
    {
        Refused.Add(1);
        try
        {
            await using var connection = await db.Service.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO connector_webhook_failures (workspace_id, connector_id, failed_verifications, last_failure, last_failure_at)
                VALUES (@WorkspaceId, @ConnectorId, 1, @failure, now())
                ON CONFLICT (workspace_id, connector_id) DO UPDATE
                   SET failed_verifications = connector_webhook_failures.failed_verifications + 1, last_failure = @failure, last_failure_at = now()
                """, new { endpoint.WorkspaceId, endpoint.ConnectorId, failure }, cancellationToken: ct));
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning(e, "Could not count a failed webhook verification of connector {ConnectorId}", endpoint.ConnectorId);
        }
        return new ProblemException(401, "webhook-signature-invalid", "Signature not verified", failure);
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{32,128}$")]
    private static partial Regex TokenFormat();

    public void Dispose() => _buckets.Dispose();
}
