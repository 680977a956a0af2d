using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.Net.Http.Headers;

namespace Plugboard.Features.Dashboard;

/// <summary>
/// The dashboard's stylesheet and script, embedded in the executable (nothing is fetched from elsewhere): served at
/// /assets/{name}?v={hash of the content}, cached for a year, since a changed file gets a new URL.
/// </summary>
public static class DashboardAssets
{
    private sealed record Asset(byte[] Content, string ContentType, string Version);

    private static readonly FrozenDictionary<string, Asset> Assets = Load();

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        const string prefix = "Plugboard.Dashboard.Assets.";
        return assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).ToFrozenDictionary(
            n => n[prefix.Length..],
            n =>
            {
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                var bytes = copy.ToArray();
                var type = Path.GetExtension(n) switch
                {
                    ".css" => "text/css; charset=utf-8",
                    ".js" => "text/javascript; charset=utf-8",
                    ".svg" => "image/svg+xml",
                    var other => throw new InvalidOperationException($"No content type for dashboard asset {n} ({other})."),
                };
                return new Asset(bytes, type, Convert.ToHexStringLower(SHA256.HashData(bytes))[..12]);
            });
    }

    public static string Url(string name) => $"/assets/{name}?v={Assets[name].Version}";

    public static void Map(IEndpointRouteBuilder app) =>
        app.MapGet("/assets/{name}", (string name, HttpContext http) =>
        {
            if (!Assets.TryGetValue(name, out var asset))
            {
                return Results.NotFound();
            }
            http.Response.Headers.CacheControl = http.Request.Query["v"] == asset.Version ? "public, max-age=31536000, immutable" : "no-cache";
            http.Response.Headers[HeaderNames.XContentTypeOptions] = "nosniff";
            return Results.Bytes(asset.Content, asset.ContentType);
        }).AllowAnonymous().ExcludeFromDescription();
}
