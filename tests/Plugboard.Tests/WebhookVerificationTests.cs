using System.Security.Cryptography;
using System.Text;
using Plugboard.Features.Webhooks;

namespace Plugboard.Tests;

/// <summary>The webhook verifiers over raw bytes: the providers' published vectors, tampering, wrong secrets, rotation and replays.</summary>
public sealed class WebhookVerificationTests
{
    private static WebhookRequest Request(string body, DateTimeOffset at, params (string Name, string Value)[] headers) =>
        new(headers.ToDictionary(h => h.Name, h => h.Value), Encoding.UTF8.GetBytes(body), at);

    // The Standard Webhooks specification's own test vector.
    private const string StandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string StandardBody = """{"test": 2432232314}""";
    private const string StandardSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    private static readonly DateTimeOffset StandardTime = DateTimeOffset.FromUnixTimeSeconds(1614265330);

    private static WebhookRequest Standard(string body = StandardBody, string signature = StandardSignature, DateTimeOffset? at = null, string prefix = "webhook") =>
        Request(body, at ?? StandardTime, ($"{prefix}-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ($"{prefix}-timestamp", "1614265330"), ($"{prefix}-signature", signature));

    [Fact]
    public void Standard_webhooks_accept_the_specifications_vector_and_refuse_tampering_wrong_secrets_and_replays()
    {
        var verifier = WebhookVerifier.For("standard");
        var valid = verifier.Verify(Standard(), [StandardSecret]);
        Assert.True(valid.Valid, valid.Failure);
        Assert.Equal("msg_p5jXN8AQM9LWM0D4loKWxJek", valid.EventId);
        Assert.True(verifier.Verify(Standard(prefix: "svix"), [StandardSecret]).Valid);
        Assert.True(verifier.Verify(Standard(signature: "v1,bm90LXRoZS1zaWduYXR1cmU= " + StandardSignature), [StandardSecret]).Valid); // one of several
        Assert.True(verifier.Verify(Standard(), ["whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), StandardSecret]).Valid); // rotation overlap

        Assert.False(verifier.Verify(Standard(body: """{"test": 2432232315}"""), [StandardSecret]).Valid);
        Assert.False(verifier.Verify(Standard(), ["whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24))]).Valid);
        Assert.False(verifier.Verify(Standard(signature: "v2," + StandardSignature[3..]), [StandardSecret]).Valid);
        var late = verifier.Verify(Standard(at: StandardTime.AddMinutes(6)), [StandardSecret]);
        Assert.False(late.Valid);
        Assert.Contains("replay", late.Failure);
        Assert.False(verifier.Verify(Standard(at: StandardTime.AddMinutes(-6)), [StandardSecret]).Valid);
        Assert.True(verifier.Verify(Standard(at: StandardTime.AddMinutes(4)), [StandardSecret]).Valid);
        Assert.False(verifier.Verify(Request(StandardBody, StandardTime, ("webhook-id", "x")), [StandardSecret]).Valid);
    }

    [Fact]
    public void Github_accepts_its_documented_vector_and_refuses_a_changed_body_or_secret()
    {
        // GitHub's "Validating webhook deliveries" example.
        const string secret = "It's a Secret to Everybody";
        const string signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        var verifier = WebhookVerifier.For("github");
        var valid = verifier.Verify(Request("Hello, World!", DateTimeOffset.UtcNow, ("X-Hub-Signature-256", signature), ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")), [secret]);
        Assert.True(valid.Valid, valid.Failure);
        Assert.Equal("72d3162e-cc78-11e3-81ab-4c9367dc0958", valid.EventId);
        Assert.True(verifier.Verify(Request("Hello, World!", DateTimeOffset.UtcNow, ("x-hub-signature-256", signature.ToUpperInvariant().Replace("SHA256=", "sha256=", StringComparison.Ordinal))), [secret]).Valid);
        Assert.False(verifier.Verify(Request("Hello, World?", DateTimeOffset.UtcNow, ("X-Hub-Signature-256", signature)), [secret]).Valid);
        Assert.False(verifier.Verify(Request("Hello, World!", DateTimeOffset.UtcNow, ("X-Hub-Signature-256", signature)), ["another secret"]).Valid);
        Assert.False(verifier.Verify(Request("Hello, World!", DateTimeOffset.UtcNow, ("X-Hub-Signature", "sha1=abc")), [secret]).Valid);
    }

    [Theory]
    [InlineData("zoom", "x-zm-signature", "x-zm-request-timestamp")]
    [InlineData("slack", "X-Slack-Signature", "X-Slack-Request-Timestamp")]
    public void Zoom_and_slack_sign_v0_timestamp_and_body_and_refuse_stale_or_tampered_requests(string scheme, string signatureHeader, string timestampHeader)
    {
        const string secret = "provider-signing-secret";
        const string body = """{"event":"recording.transcript_completed","payload":{"object":{"uuid":"u1"}}}""";
        var now = DateTimeOffset.FromUnixTimeSeconds(1764680000);
        // The providers' documented construction, computed independently of the verifier: v0:{timestamp}:{body}.
        string Sign(string content) => "v0=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(content)));
        var verifier = WebhookVerifier.For(scheme);
        WebhookRequest At(DateTimeOffset arrival, string signature, string sentBody = body) =>
            Request(sentBody, arrival, (signatureHeader, signature), (timestampHeader, "1764680000"));

        Assert.True(verifier.Verify(At(now, Sign($"v0:1764680000:{body}")), [secret]).Valid);
        Assert.True(verifier.Verify(At(now.AddMinutes(4), Sign($"v0:1764680000:{body}")), ["old", secret]).Valid);
        Assert.False(verifier.Verify(At(now, Sign($"v0:1764680000:{body}"), body.Replace("u1", "u2", StringComparison.Ordinal)), [secret]).Valid);
        Assert.False(verifier.Verify(At(now, Sign($"v0:1764680001:{body}")), [secret]).Valid);
        Assert.False(verifier.Verify(At(now.AddMinutes(6), Sign($"v0:1764680000:{body}")), [secret]).Valid);
        Assert.False(verifier.Verify(At(now, Sign($"v0:1764680000:{body}")), ["wrong"]).Valid);
        Assert.False(verifier.Verify(Request(body, now, (signatureHeader, Sign($"v0:1764680000:{body}"))), [secret]).Valid); // no timestamp
    }

    [Fact]
    public void Zooms_url_validation_answer_is_the_plain_token_and_its_hmac_under_the_secret()
    {
        var (plain, encrypted) = VersionZeroVerifier.ZoomValidation("qgg8vlvZRS6UYooatFL8Aw", "secret-token");
        Assert.Equal("qgg8vlvZRS6UYooatFL8Aw", plain);
        Assert.Equal(Convert.ToHexStringLower(HMACSHA256.HashData("secret-token"u8, "qgg8vlvZRS6UYooatFL8Aw"u8)), encrypted);
        Assert.NotEqual(encrypted, VersionZeroVerifier.ZoomValidation("qgg8vlvZRS6UYooatFL8Aw", "another").EncryptedToken);
    }
}
