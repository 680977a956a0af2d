using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Plugboard.Tests.Infrastructure;

/// <summary>A connector with an inbound webhook, and requests signed the way each provider signs them.</summary>
public sealed record Hook(TeamWorkspace Team, string ConnectorId, string Path, string? Secret)
{
    public string EventsUrl => $"/v1/workspaces/{Team.Id}/connectors/{ConnectorId}/webhook/events";
}

public static class Webhooks
{
    /// <summary>A manifest whose one step calls <paramref name="baseUrl"/>/ping, with the given webhooks section.</summary>
    public static Dictionary<string, object?> Manifest(object webhooks, string baseUrl = "http://127.0.0.1:9", object? inputs = null, object? streams = null)
    {
        var manifest = new Dictionary<string, object?>
        {
            ["version"] = 1,
            ["base_url"] = baseUrl,
            ["steps"] = new[] { new { id = "ping", request = new { method = "GET", path = "/ping" }, extract = new { items = "$.items[*]" } } },
            ["webhooks"] = webhooks,
        };
        if (inputs is not null)
        {
            manifest["inputs"] = inputs;
        }
        if (streams is not null)
        {
            manifest["streams"] = streams;
        }
        return manifest;
    }

    /// <summary>Creates the connector with its webhook on; sets a generated secret (returned) or the provider's <paramref name="providedSecret"/>.</summary>
    public static async Task<Hook> CreateAsync(TeamWorkspace team, object manifest, string? providedSecret = null, bool setSecret = true)
    {
        var created = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors",
            new { name = "hook-" + Guid.NewGuid().ToString("N")[..8], manifest, webhook_active = true })).AssertStatusAsync(201);
        var id = created.GetProperty("id").GetString()!;
        var path = created.GetProperty("webhook_url").GetString()!;
        Assert.StartsWith("/v1/hooks/", path, StringComparison.Ordinal);
        string? secret = null;
        if (setSecret)
        {
            var answer = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{id}/webhook/secret",
                providedSecret is null ? (object)new { } : new { secret = providedSecret })).AssertStatusAsync(200);
            secret = providedSecret ?? answer.GetProperty("secret").GetString();
        }
        return new Hook(team, id, path, secret);
    }

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public static string Hex(byte[] mac) => Convert.ToHexStringLower(mac);

    public static string StandardSignature(string secret, string id, long timestamp, string body) =>
        "v1," + Convert.ToBase64String(HMACSHA256.HashData(Convert.FromBase64String(secret["whsec_".Length..]), Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));

    public static HttpRequestMessage Standard(Hook hook, string body, string? id = null, long? timestamp = null, string? secret = null)
    {
        id ??= "msg_" + Guid.NewGuid().ToString("N");
        var at = timestamp ?? Now;
        var request = Post(hook.Path, body);
        request.Headers.Add("webhook-id", id);
        request.Headers.Add("webhook-timestamp", at.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", StandardSignature(secret ?? hook.Secret!, id, at, body));
        return request;
    }

    public static HttpRequestMessage VersionZero(Hook hook, string body, string signatureHeader, string timestampHeader, long? timestamp = null)
    {
        var at = timestamp ?? Now;
        var request = Post(hook.Path, body);
        request.Headers.Add(timestampHeader, at.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add(signatureHeader, "v0=" + Hex(HMACSHA256.HashData(Encoding.UTF8.GetBytes(hook.Secret!), Encoding.UTF8.GetBytes($"v0:{at}:{body}"))));
        return request;
    }

    public static HttpRequestMessage Zoom(Hook hook, string body, long? timestamp = null) => VersionZero(hook, body, "x-zm-signature", "x-zm-request-timestamp", timestamp);

    public static HttpRequestMessage Post(string path, string body, string contentType = "application/json") =>
        new(HttpMethod.Post, path) { Content = new StringContent(body, new MediaTypeHeaderValue(contentType)) };

    /// <summary>The signature header a provider's own npm library computes (tests/webhooks/sign.mjs).</summary>
    public static async Task<string> SignWithNpmAsync(params string[] args)
    {
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(System.IO.Path.Combine(PlugboardServer.RepoRoot, "tests", "webhooks", "sign.mjs"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"sign.mjs failed: {error}");
        return output.Trim();
    }

    /// <summary>Waits until the event's processing job has marked it processed, and returns it.</summary>
    public static async Task<JsonElement> ProcessedAsync(Hook hook, string eventId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var e = await (await hook.Team.Viewer.Http.GetAsync($"{hook.EventsUrl}/{eventId}")).AssertStatusAsync(200);
            if (e.GetProperty("processed").GetBoolean() || e.GetProperty("error").ValueKind == JsonValueKind.String)
            {
                return e;
            }
            Assert.True(DateTime.UtcNow < deadline, $"event not processed: {e}");
            await Task.Delay(50);
        }
    }

    public static async Task<List<JsonElement>> EventsAsync(Hook hook, string query = "")
    {
        var page = await (await hook.Team.Viewer.Http.GetAsync($"{hook.EventsUrl}?limit=100{query}")).AssertStatusAsync(200);
        return page.GetProperty("items").EnumerateArray().ToList();
    }
}
