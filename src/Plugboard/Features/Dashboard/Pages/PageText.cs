using System.Text.Json;
using Plugboard.Http;

namespace Plugboard.Features.Dashboard.Pages;

/// <summary>How pages show values.</summary>
public static class PageText
{
    private static readonly JsonSerializerOptions Indented = new(ApiJson.Options) { WriteIndented = true };

    /// <summary>JSON as the API would send it, indented for reading.</summary>
    public static string Json(JsonElement value) => JsonSerializer.Serialize(value, Indented);
}
