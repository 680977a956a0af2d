using Microsoft.Net.Http.Headers;

namespace Plugboard.Http;

/// <summary>ETags are the row's version: they change on every write, and If-Match turns a stale write into 412.</summary>
public static class ETags
{
    public static string Format(long rowVersion) => $"\"{rowVersion}\"";

    /// <summary>
    /// The versions If-Match names (RFC 9110: one entity tag or a comma-separated list; weak tags compare by value
    /// here, since every tag this API sends is a row version), or null when the header is absent or '*'. A tag this
    /// API could not have sent matches nothing, which answers 412.
    /// </summary>
    public static long[]? IfMatch(HttpRequest request)
    {
        var header = request.Headers[HeaderNames.IfMatch].ToString();
        if (string.IsNullOrWhiteSpace(header) || header.Trim() == "*")
        {
            return null;
        }
        if (!EntityTagHeaderValue.TryParseList([header], out var tags) || tags.Count == 0)
        {
            throw new ProblemException(412, "precondition-failed", "Precondition failed", "If-Match must list ETags this API returned, such as \"12345\".");
        }
        if (tags.Any(t => t.Tag == "*"))
        {
            return null;
        }
        var versions = new List<long>();
        foreach (var tag in tags)
        {
            var value = tag.Tag.AsSpan().Trim('"');
            if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version))
            {
                versions.Add(version);
            }
        }
        return versions.Count > 0 ? [.. versions]
            : throw new ProblemException(412, "precondition-failed", "Precondition failed", "If-Match must list ETags this API returned, such as \"12345\".");
    }

    public static void Set(HttpContext context, long rowVersion) => context.Response.Headers.ETag = Format(rowVersion);
}
