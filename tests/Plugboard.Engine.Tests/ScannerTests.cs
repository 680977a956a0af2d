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
    public void The_consent_url_and_its_parameters_are_public_but_a_secret_named_parameter_must_be_templated()
    {
        Assert.Empty(LiteralSecretScanner.Scan(JsonNode.Parse("""
            {"auth": {"type": "oauth2_authorization_code", "authorization_url": "https://accounts.example.test/o/oauth2/auth",
                      "token_url": "https://oauth2.example.test/token", "client_id": "{{ credentials.client_id }}",
                      "client_secret": "{{ credentials.client_secret }}", "authorization_params": {"access_type": "offline", "prompt": "consent"}}}
            """)));
        var issues = LiteralSecretScanner.Scan(JsonNode.Parse("""
            {"auth": {"type": "oauth2_authorization_code", "authorization_url": "https://a.test/auth", "token_url": "https://a.test/token",
                      "client_id": "id", "authorization_params": {"client_secret": "s3cr3t-value"}}}
            """));
        Assert.Equal("/auth/authorization_params/client_secret", Assert.Single(issues).Pointer);
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
