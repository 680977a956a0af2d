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
}
