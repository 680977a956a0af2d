using Microsoft.Net.Http.Headers;

namespace Plugboard.Http;

/// <summary>ETags are the row's xmin: they change on every write, and If-Match turns a stale write into 412.</summary>
public static class ETags
{
    public static string Format(long rowVersion) => $"\"{rowVersion}\"";

    /// <summary>The version named by If-Match, or null when the header is absent or '*'.</summary>
    public static long? IfMatch(HttpRequest request)
    {
        var header = request.Headers[HeaderNames.IfMatch].ToString();
        if (string.IsNullOrWhiteSpace(header) || header.Trim() == "*")
        {
            return null;
        }
        var value = header.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal))
        {
            value = value[2..];
        }
        if (value.Length > 2 && value[0] == '"' && value[^1] == '"' && long.TryParse(value[1..^1], out var version))
        {
            return version;
        }
        throw new ProblemException(412, "precondition-failed", "Precondition failed", "If-Match must be an ETag this API returned, such as \"12345\".");
    }

    public static void Set(HttpContext context, long rowVersion) => context.Response.Headers.ETag = Format(rowVersion);
}
