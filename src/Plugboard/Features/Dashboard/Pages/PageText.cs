using System.Text.Json;
using Plugboard.Http;

namespace Plugboard.Features.Dashboard.Pages;

/// <summary>How pages show values.</summary>
public static class PageText
{
    private static readonly JsonSerializerOptions Indented = new(ApiJson.Options) { WriteIndented = true };

    /// <summary>JSON as the API would send it, indented for reading.</summary>
    public static string Json(JsonElement value) => JsonSerializer.Serialize(value, Indented);

    /// <summary>A link to an imported item's source only when it is http(s): a <c>javascript:</c> URL must not become a link.</summary>
    public static string? SafeLink(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "https" or "http" ? uri.AbsoluteUri : null;
}
