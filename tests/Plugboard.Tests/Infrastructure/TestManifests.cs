namespace Plugboard.Tests.Infrastructure;

public static class TestManifests
{
    /// <summary>The smallest valid manifest: one GET.</summary>
    public static object Minimal(string baseUrl = "https://api.example.test") =>
        new { version = 1, base_url = baseUrl, steps = new[] { new { id = "get", request = new { method = "GET", path = "/" } } } };
}
