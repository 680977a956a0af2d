using Microsoft.Extensions.Configuration;
using Plugboard.Engine.Manifests;
using Plugboard.Observability;
using Plugboard.Security;

namespace Plugboard.Tests;

public sealed class SecurityUnitTests
{
    [Theory]
    [InlineData("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234")]
    [InlineData("Host=db;Password=hunter2-is-long;Username=x", "hunter2-is-long")]
    [InlineData("key pb_AbCdEfGh_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG used", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")]
    [InlineData("value pb1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA end", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked", "ghp_abcdefghijklmnopqrstuvwxyz0123456789")]
    [InlineData("api_key=sk_live_abcdefghijklmnop1234", "sk_live_abcdefghijklmnop1234")]
    [InlineData("Unhandled on POST /v1/hooks/0f9c2e7a41b84c3e9d5a6b7c8d9e0f1a2b3c4d5e6f708192", "0f9c2e7a41b84c3e9d5a6b7c8d9e0f1a2b3c4d5e6f708192")]
    [InlineData("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rotated", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    public void Log_redaction_masks_secret_shapes(string line, string secret)
    {
        var redacted = RedactingJsonLoggerProvider.Redact(line);
        Assert.DoesNotContain(secret, redacted, StringComparison.Ordinal);
        Assert.Contains("***", redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void Log_lines_are_json_with_redacted_messages_and_values()
    {
        var output = new StringWriter();
        using var provider = new RedactingJsonLoggerProvider(output, Microsoft.Extensions.Logging.LogLevel.Information);
        var logger = provider.CreateLogger("test");
        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "Calling with {Header}", "Bearer sEcReT-vAlUe-123456");
        var line = output.ToString().Trim();
        using var json = System.Text.Json.JsonDocument.Parse(line);
        Assert.Equal("Information", json.RootElement.GetProperty("level").GetString());
        Assert.DoesNotContain("sEcReT-vAlUe-123456", line, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Embedded_key_ring_is_created_once_with_owner_only_permissions_and_reloads_after_rotation()
    {
        var home = Directory.CreateTempSubdirectory("plugboard-keys").FullName;
        var configuration = new ConfigurationBuilder().Build();
        var ring = KeyRing.Load(configuration, home, createIfMissing: true);
        var path = Path.Combine(home, "keys.json");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(ring.CurrentKeyId, KeyRing.Load(configuration, home, createIfMissing: false).CurrentKeyId);
        var ciphertext = ring.Encrypt("hello", "aad");
        var rotated = ring.WithNewKey();
        rotated.Save(path);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(5));
        var reread = KeyRing.Load(configuration, home, createIfMissing: false);
        Assert.Equal(rotated.CurrentKeyId, reread.CurrentKeyId);
        Assert.Equal("hello", reread.Decrypt(ciphertext, "aad"));
        // A running process holding the first ring picks the new key up from the file within a few seconds.
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        Assert.Equal(rotated.CurrentKeyId, ring.CurrentKeyId);
        Assert.StartsWith($"pb1:{rotated.CurrentKeyId}:", ring.Encrypt("x", "aad"), StringComparison.Ordinal);
        Assert.Throws<KeyRingMissingException>(() => KeyRing.Load(configuration, Path.Combine(home, "elsewhere"), createIfMissing: false));
        Assert.Throws<InvalidOperationException>(() => new KeyRing([new KeyRingEntry("short", Convert.ToBase64String(new byte[16]))]));
    }

    [Fact]
    public void Literal_secret_scanner_allows_references_and_schemes_and_names_the_place()
    {
        var clean = System.Text.Json.Nodes.JsonNode.Parse("""
            {"auth": {"type": "oauth2_refresh_token", "token_url": "https://x/token", "client_secret": "{{ credentials.client_secret }}"},
             "steps": [{"request": {"headers": {"Authorization": "Bearer {{ credentials.token }}", "X-Trace": "abc"}, "query": {"page": "1"}}}]}
            """);
        Assert.Empty(LiteralSecretScanner.Scan(clean));
        var dirty = System.Text.Json.Nodes.JsonNode.Parse("""{"steps": [{"request": {"headers": {"X-Api-Key": "{{ credentials.key }}x"}}}]}""");
        var issue = Assert.Single(LiteralSecretScanner.Scan(dirty));
        Assert.Equal("/steps/0/request/headers/X-Api-Key", issue.Pointer);
    }

    [Theory]
    [InlineData("n=42", System.Text.Json.JsonValueKind.Number)]
    [InlineData("n=-1.5", System.Text.Json.JsonValueKind.Number)]
    [InlineData("b=true", System.Text.Json.JsonValueKind.True)]
    [InlineData("o={\"a\":1}", System.Text.Json.JsonValueKind.Object)]
    [InlineData("a=[1,2]", System.Text.Json.JsonValueKind.Array)]
    [InlineData("s=null", System.Text.Json.JsonValueKind.String)]
    [InlineData("s=\"quoted\"", System.Text.Json.JsonValueKind.String)]
    [InlineData("s=12abc", System.Text.Json.JsonValueKind.String)]
    [InlineData("s=text", System.Text.Json.JsonValueKind.String)]
    public void Run_values_that_are_json_numbers_booleans_objects_or_arrays_keep_their_type_and_the_rest_are_strings(string pair, System.Text.Json.JsonValueKind kind)
    {
        var (name, value) = (pair[..pair.IndexOf('=', StringComparison.Ordinal)], pair[(pair.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        var parsed = Plugboard.Hosting.LocalRun.Pairs([pair], "--input")[name]!;
        Assert.Equal(kind, parsed.GetValueKind());
        if (kind == System.Text.Json.JsonValueKind.String)
        {
            Assert.Equal(value, parsed.GetValue<string>()); // the text as given, quotes included
        }
    }
}
