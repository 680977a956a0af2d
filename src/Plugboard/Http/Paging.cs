using System.Buffers.Text;
using System.Text;

namespace Plugboard.Http;

/// <summary>A page of a list; pass next_cursor back as ?cursor= for the next page.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

/// <summary>
/// Keyset pagination: the cursor is the opaque (base64url) sort key of the last row seen, tagged with the list it
/// came from (a hash of the request path, which names the workspace too), so a cursor of another list or another
/// workspace is refused with 400 instead of silently paging somewhere else.
/// </summary>
public static class Paging
{
    private static readonly AsyncLocal<string?> CurrentList = new();

    /// <summary>Set once per request (by the pipeline) to the path of the list being read.</summary>
    public static void BindList(PathString path) => CurrentList.Value = path.Value;

    private static string ListTag() =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(CurrentList.Value ?? "")).AsSpan(0, 6));

    public const int DefaultLimit = 50;
    public const int MaxLimit = 200;

    public static int Limit(int? limit) => limit switch
    {
        null => DefaultLimit,
        < 1 or > MaxLimit => throw Problems.BadRequest($"limit must be between 1 and {MaxLimit}."),
        _ => limit.Value,
    };

    public static string? After(string? cursor)
    {
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            var separator = text.IndexOf(':', StringComparison.Ordinal);
            if (separator > 0 && text[..separator] != ListTag())
            {
                throw Problems.BadRequest("cursor belongs to another list (or another workspace): pass back the next_cursor of the previous page of this list.");
            }
            var key = separator > 0 ? text[(separator + 1)..] : "";
            if (key.Length is > 0 and <= 100 && !key.Any(char.IsControl))
            {
                return key;
            }
        }
        catch (FormatException)
        {
        }
        throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.");
    }

    /// <summary>A uuid cursor; rows are ordered by their time-ordered (v7) id, newest first.</summary>
    public static Guid? AfterId(string? cursor) =>
        After(cursor) is { } key ? (Guid.TryParse(key, out var id) ? id : throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.")) : null;

    /// <summary>Builds a page from rows fetched with LIMIT limit + 1.</summary>
    public static Page<T> ToPage<T>(IReadOnlyList<T> rows, int limit, Func<T, string> key)
    {
        if (rows.Count <= limit)
        {
            return new Page<T>(rows, null);
        }
        var items = rows.Take(limit).ToList();
        return new Page<T>(items, Cursor(key(items[^1])));
    }

    /// <summary>An opaque cursor of this list for a sort key (for feeds, which hand one back even at their end).</summary>
    public static string Cursor(string key) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(ListTag() + ":" + key));

    public static Page<T> ToPage<T>(IReadOnlyList<T> rows, int limit, Func<T, Guid> id) => ToPage(rows, limit, r => id(r).ToString());
}
