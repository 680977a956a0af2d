using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;

namespace Plugboard.Engine.Tests;

public sealed class ScannerTests
{
    [Fact]
    public void Literal_bearer_token_in_auth_is_reported_with_its_pointer()
    {
        var issues = LiteralSecretScanner.Scan(JsonNode.Parse("""{"auth": {"type": "bearer", "token": "abc"}}"""));
        Assert.Equal("/auth/token", Assert.Single(issues).Pointer);
    }

    [Fact]
    public void Literal_public_identifiers_are_accepted_and_literal_secrets_refused()
    {
        var accepted = LiteralSecretScanner.Scan(JsonNode.Parse("""
            {"auth": {"type": "oauth2_client_credentials", "token_url": "https://login.example.test/oauth/token", "client_id": "my-public-app-id",
                      "client_secret": "{{ credentials.client_secret }}", "scopes": ["read"]}}
            """));
        Assert.Empty(accepted);
        Assert.Empty(LiteralSecretScanner.Scan(JsonNode.Parse("""{"auth": {"type": "basic", "username": "api", "password": "{{ credentials.password }}"}}""")));
        foreach (var (field, auth) in new[]
        {
            ("client_secret", """{"type": "oauth2_client_credentials", "token_url": "https://x.test/t", "client_id": "id", "client_secret": "s3cr3t-value"}"""),
            ("password", """{"type": "basic", "username": "api", "password": "hunter2"}"""),
            ("refresh_token", """{"type": "oauth2_refresh_token", "token_url": "https://x.test/t", "client_id": "id", "refresh_token": "rt-literal"}"""),
            ("value", """{"type": "api_key", "in": "header", "name": "X-Key", "value": "literal-key"}"""),
        })
        {
            Assert.Contains(LiteralSecretScanner.Scan(JsonNode.Parse($$"""{"auth": {{auth}}}""")), i => i.Pointer == $"/auth/{field}");
        }
    }
}
