using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Plugboard.Engine.Manifests;

namespace Plugboard.Features.Webhooks;

/// <summary>An inbound request as the verifiers see it: the raw body bytes (never parsed first) and its headers.</summary>
public sealed class WebhookRequest(IReadOnlyDictionary<string, string> headers, byte[] body, DateTimeOffset receivedAt)
{
    private readonly IReadOnlyDictionary<string, string> _headers =
        headers is Dictionary<string, string> { Comparer: var comparer } same && comparer == StringComparer.OrdinalIgnoreCase ? same : new Dictionary<string, string>(headers, StringComparer.OrdinalIgnoreCase);

    public byte[] Body { get; } = body;
    public DateTimeOffset ReceivedAt { get; } = receivedAt;

    public string? Header(string name) => _headers.TryGetValue(name, out var value) && value.Length > 0 ? value : null;
}

/// <summary>What verification concluded: valid (with the provider's event id when it sends one, and which of the
/// secrets matched: 0 the current one, 1 the previous one during a rotation's overlap), or why not.</summary>
public sealed record WebhookVerdict(bool Valid, string? EventId, string? Failure, int SecretIndex = 0)
{
    public static WebhookVerdict Accepted(string? eventId, int secretIndex) => new(true, eventId, null, secretIndex);
    public static WebhookVerdict Refused(string failure) => new(false, null, failure);
}

/// <summary>
/// Verifies an inbound webhook over its raw body bytes with one or more secrets (several while a rotation overlaps),
/// comparing in constant time. Timestamped schemes refuse a request more than <see cref="Tolerance"/> away from its
/// arrival (a replay, or a clock far off).
/// </summary>
public abstract class WebhookVerifier
{
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    public abstract string Scheme { get; }

    public abstract WebhookVerdict Verify(WebhookRequest request, IReadOnlyList<string> secrets);

    public static WebhookVerifier For(string scheme) => scheme switch
    {
        "standard" => new StandardWebhooksVerifier(),
        "github" => new GitHubVerifier(),
        "zoom" => new VersionZeroVerifier("zoom", "x-zm-signature", "x-zm-request-timestamp"),
        "slack" => new VersionZeroVerifier("slack", "x-slack-signature", "x-slack-request-timestamp"),
        _ => throw new ArgumentOutOfRangeException(nameof(scheme), scheme, "Unknown webhook verification scheme."),
    };

    public static WebhookVerifier For(WebhookSpec spec) => spec.Verify == "hmac" ? new HmacVerifier(spec.Hmac!) : For(spec.Verify);

    protected static bool FixedTimeEquals(string expected, string given) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(given));

    protected static byte[] Concat(params byte[][] parts)
    {
        var all = new byte[parts.Sum(p => p.Length)];
        var offset = 0;
        foreach (var part in parts)
        {
            part.CopyTo(all, offset);
            offset += part.Length;
        }
        return all;
    }

    /// <summary>A Unix-seconds timestamp within the tolerance of the arrival, or why not.</summary>
    protected static string? CheckTimestamp(string? text, DateTimeOffset receivedAt, string header)
    {
        if (text is null || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return $"The {header} header is missing or not a Unix time in seconds.";
        }
        var sent = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(seconds, -62135596800, 253402300799));
        return (receivedAt - sent).Duration() > Tolerance
            ? $"The {header} header is more than {Tolerance.TotalMinutes:0} minutes away from the time it arrived: a replay, or a clock far off."
            : null;
    }
}

/// <summary>
/// Standard Webhooks (and Svix, whose header names it also takes): HMAC-SHA256 with the base64 key after <c>whsec_</c>
/// over <c>{id}.{timestamp}.{body}</c>; the signature header lists one or more <c>v1,&lt;base64&gt;</c> entries.
/// </summary>
public sealed class StandardWebhooksVerifier : WebhookVerifier
{
    public override string Scheme => "standard";

    public override WebhookVerdict Verify(WebhookRequest request, IReadOnlyList<string> secrets)
    {
        var id = request.Header("webhook-id") ?? request.Header("svix-id");
        var timestamp = request.Header("webhook-timestamp") ?? request.Header("svix-timestamp");
        var signatures = request.Header("webhook-signature") ?? request.Header("svix-signature");
        if (id is null || signatures is null)
        {
            return WebhookVerdict.Refused("The webhook-id and webhook-signature headers are required.");
        }
        if (CheckTimestamp(timestamp, request.ReceivedAt, "webhook-timestamp") is { } stale)
        {
            return WebhookVerdict.Refused(stale);
        }
        var signed = Concat(Encoding.UTF8.GetBytes($"{id}.{timestamp}."), request.Body);
        var given = signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Where(s => s.StartsWith("v1,", StringComparison.Ordinal)).Select(s => s[3..]).ToList();
        for (var index = 0; index < secrets.Count; index++)
        {
            if (Key(secrets[index]) is not { } key)
            {
                continue;
            }
            var expected = Convert.ToBase64String(HMACSHA256.HashData(key, signed));
            foreach (var signature in given)
            {
                if (FixedTimeEquals(expected, signature))
                {
                    return WebhookVerdict.Accepted(id, index);
                }
            }
        }
        return WebhookVerdict.Refused("No v1 signature in webhook-signature matches the endpoint's secret.");
    }

    private static byte[]? Key(string secret)
    {
        var encoded = secret.StartsWith("whsec_", StringComparison.Ordinal) ? secret[6..] : secret;
        try
        {
            return Convert.FromBase64String(encoded);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}

/// <summary>GitHub: <c>X-Hub-Signature-256: sha256=&lt;hex HMAC-SHA256(secret, body)&gt;</c>; the event id is
/// <c>X-GitHub-Delivery</c>. GitHub sends no timestamp: repeated deliveries are caught by that id.</summary>
public sealed class GitHubVerifier : WebhookVerifier
{
    public override string Scheme => "github";

    public override WebhookVerdict Verify(WebhookRequest request, IReadOnlyList<string> secrets)
    {
        if (request.Header("x-hub-signature-256") is not { } header || !header.StartsWith("sha256=", StringComparison.Ordinal))
        {
            return WebhookVerdict.Refused("The X-Hub-Signature-256 header is missing or not sha256=….");
        }
        var given = header[7..].ToLowerInvariant();
        for (var index = 0; index < secrets.Count; index++)
        {
            if (FixedTimeEquals(Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secrets[index]), request.Body)), given))
            {
                return WebhookVerdict.Accepted(request.Header("x-github-delivery"), index);
            }
        }
        return WebhookVerdict.Refused("X-Hub-Signature-256 does not match the endpoint's secret.");
    }
}

/// <summary>
/// Zoom and Slack: <c>v0=&lt;hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")&gt;</c>, the timestamp in its own header.
/// Neither sends an event id in a header; the event's id is read from the body by the endpoint's mapping.
/// </summary>
public sealed class VersionZeroVerifier(string scheme, string signatureHeader, string timestampHeader) : WebhookVerifier
{
    public override string Scheme => scheme;

    public override WebhookVerdict Verify(WebhookRequest request, IReadOnlyList<string> secrets)
    {
        var timestamp = request.Header(timestampHeader);
        if (CheckTimestamp(timestamp, request.ReceivedAt, timestampHeader) is { } stale)
        {
            return WebhookVerdict.Refused(stale);
        }
        if (request.Header(signatureHeader) is not { } header || !header.StartsWith("v0=", StringComparison.Ordinal))
        {
            return WebhookVerdict.Refused($"The {signatureHeader} header is missing or not v0=….");
        }
        var signed = Concat(Encoding.UTF8.GetBytes($"v0:{timestamp}:"), request.Body);
        var given = header[3..].ToLowerInvariant();
        for (var index = 0; index < secrets.Count; index++)
        {
            if (FixedTimeEquals(Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secrets[index]), signed)), given))
            {
                return WebhookVerdict.Accepted(null, index);
            }
        }
        return WebhookVerdict.Refused($"{signatureHeader} does not match the endpoint's secret.");
    }

    /// <summary>Zoom's <c>endpoint.url_validation</c> answer: the plain token and its hex HMAC-SHA256 under the secret.</summary>
    public static (string PlainToken, string EncryptedToken) ZoomValidation(string plainToken, string secret) =>
        (plainToken, Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(plainToken))));
}

/// <summary>
/// Microsoft Graph change notifications carry no signature: each notification in <c>value</c> holds the
/// <c>clientState</c> given when the subscription was created, which must equal the endpoint's secret (compared in
/// constant time). Graph sends no delivery id; the endpoint names each notification by its content.
/// </summary>
public static class GraphClientState
{
    /// <summary>Which secret the notification's clientState equals, or null.</summary>
    public static int? Verify(string? clientState, IReadOnlyList<string> secrets)
    {
        if (clientState is null)
        {
            return null;
        }
        for (var index = 0; index < secrets.Count; index++)
        {
            if (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(secrets[index]), Encoding.UTF8.GetBytes(clientState)))
            {
                return index;
            }
        }
        return null;
    }
}

/// <summary>
/// A generic HMAC as the manifest describes it: the signature in <see cref="HmacSpec.Header"/> after an optional
/// prefix, hex or base64, over <see cref="HmacSpec.Signed"/> with <c>{body}</c> the raw bytes and <c>{timestamp}</c>
/// and <c>{id}</c> the named headers' values.
/// </summary>
public sealed class HmacVerifier(HmacSpec spec) : WebhookVerifier
{
    public override string Scheme => "hmac";

    public override WebhookVerdict Verify(WebhookRequest request, IReadOnlyList<string> secrets)
    {
        var timestamp = spec.TimestampHeader is { } timestampHeader ? request.Header(timestampHeader) : null;
        if (spec.TimestampHeader is not null && CheckTimestamp(timestamp, request.ReceivedAt, spec.TimestampHeader) is { } stale)
        {
            return WebhookVerdict.Refused(stale);
        }
        var id = spec.IdHeader is { } idHeader ? request.Header(idHeader) : null;
        if (spec.IdHeader is not null && id is null)
        {
            return WebhookVerdict.Refused($"The {spec.IdHeader} header is missing.");
        }
        if (request.Header(spec.Header) is not { } header || !header.StartsWith(spec.Prefix, StringComparison.Ordinal))
        {
            return WebhookVerdict.Refused($"The {spec.Header} header is missing" + (spec.Prefix.Length > 0 ? $" or does not start with {spec.Prefix}." : "."));
        }
        var given = header[spec.Prefix.Length..].Trim();
        if (spec.Encoding == "hex")
        {
            given = given.ToLowerInvariant();
        }
        var parts = spec.Signed.Replace("{timestamp}", timestamp, StringComparison.Ordinal).Replace("{id}", id, StringComparison.Ordinal)
            .Split("{body}");
        var signed = new List<byte[]>();
        for (var i = 0; i < parts.Length; i++)
        {
            if (i > 0)
            {
                signed.Add(request.Body);
            }
            signed.Add(Encoding.UTF8.GetBytes(parts[i]));
        }
        var content = Concat([.. signed]);
        for (var index = 0; index < secrets.Count; index++)
        {
            var key = Encoding.UTF8.GetBytes(secrets[index]);
            var mac = spec.Algorithm switch
            {
                "sha1" => HMACSHA1.HashData(key, content),
                "sha512" => HMACSHA512.HashData(key, content),
                _ => HMACSHA256.HashData(key, content),
            };
            var expected = spec.Encoding == "base64" ? Convert.ToBase64String(mac) : Convert.ToHexStringLower(mac);
            if (FixedTimeEquals(expected, given))
            {
                return WebhookVerdict.Accepted(id, index);
            }
        }
        return WebhookVerdict.Refused($"{spec.Header} does not match the endpoint's secret.");
    }
}
