using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Features.Documents;
using Plugboard.Http;

namespace Plugboard.Features.Search;

/// <summary>One matching chunk: where it is (document, chunk, heading path, page or time range) and a snippet safe to put into HTML.</summary>
public sealed record SearchHit(Guid DocumentId, string Title, int ChunkOrdinal, IReadOnlyList<string> HeadingPath, int? PageStart, int? PageEnd, long? StartMs,
    long? EndMs, string? Speaker, string Snippet, float Rank, string? ExternalUrl, string Source, Guid? ConnectorId, string? ContentType, string? FileName);

/// <summary>
/// Full-text search over every chunk of the workspace with web-search syntax (quoted phrases, <c>-word</c>, <c>or</c>),
/// ranked with titles and headings above body text, with filters and cursor pagination. Row-level security keeps every
/// hit inside the workspace; deleted documents are never found.
/// </summary>
public static class SearchApi
{
    public const int MaxQueryLength = 1000;

    // Private-use markers around matches: content never holds them (the pipeline replaces them), so after HTML-encoding
    // the snippet they become the only markup in it.
    private const string StartMark = "\uE000";
    private const string StopMark = "\uE001";

    public static void Map(RouteGroupBuilder workspace) =>
        workspace.MapGet("/search", Search).WithTags("Search").Produces<Page<SearchHit>>();

    private sealed record HitRow
    {
        public Guid DocumentId { get; init; }
        public int Ordinal { get; init; }
        public float Rank { get; init; }
        public string Title { get; init; } = "";
        public string[] HeadingPath { get; init; } = [];
        public int? PageStart { get; init; }
        public int? PageEnd { get; init; }
        public long? StartMs { get; init; }
        public long? EndMs { get; init; }
        public string? Speaker { get; init; }
        public string Snippet { get; init; } = "";
        public string? ExternalUrl { get; init; }
        public string Source { get; init; } = "";
        public Guid? ConnectorId { get; init; }
        public string? ContentType { get; init; }
        public string? FileName { get; init; }
    }

    internal static async Task<IResult> Search(RequestDb db, DocumentPipelineOptions pipeline, string? q, [FromQuery(Name = "connector_id")] Guid? connectorId,
        string? source, [FromQuery(Name = "content_type")] string? contentType, [FromQuery(Name = "batch_id")] Guid? batchId, DateTime? since, DateTime? until,
        int? limit, string? cursor, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(q))
        {
            throw Problems.BadRequest("q is required: the words to search for (\"quoted phrase\", -excluded, this or that).");
        }
        if (q.Length > MaxQueryLength)
        {
            throw Problems.BadRequest($"q is limited to {MaxQueryLength} characters.");
        }
        if (source is not null && !DocumentsApi.Sources.Contains(source))
        {
            throw Problems.BadRequest($"source must be one of: {string.Join(", ", DocumentsApi.Sources)}.");
        }
        var take = Paging.Limit(limit ?? 20);
        var (afterRank, afterDocument, afterOrdinal) = ReadCursor(cursor);
        var rows = await db.QueryAsync<HitRow>(
            $"""
            WITH q AS (SELECT websearch_to_tsquery(@config::regconfig, @q) AS query),
            ranked AS (
                SELECT c.document_id, c.ordinal, ts_rank(c.search, q.query, 1)::real AS rank
                  FROM document_chunks c
                  JOIN imported_documents d ON d.workspace_id = c.workspace_id AND d.id = c.document_id
                 CROSS JOIN q
                 WHERE c.workspace_id = app_workspace_id() AND c.search @@ q.query AND NOT d.is_deleted
                   AND (@connectorId::uuid IS NULL OR d.connector_id = @connectorId)
                   AND (@source::text IS NULL OR d.source = @source)
                   AND (@contentType::text IS NULL OR d.content_type = @contentType)
                   AND (@batchId::uuid IS NULL OR d.batch_id = @batchId)
                   AND (@since::timestamptz IS NULL OR d.created_at >= @since)
                   AND (@until::timestamptz IS NULL OR d.created_at < @until)),
            page AS (
                SELECT * FROM ranked
                 WHERE @afterRank::real IS NULL OR (rank, document_id, ordinal) < (@afterRank::real, @afterDocument::uuid, @afterOrdinal::int)
                 ORDER BY rank DESC, document_id DESC, ordinal DESC
                 LIMIT @take)
            SELECT p.document_id, p.ordinal, p.rank, d.title, c.heading_path, c.page_start, c.page_end, c.start_ms, c.end_ms, c.speaker,
                   ts_headline(@config::regconfig, c.content, q.query,
                               'StartSel={StartMark}, StopSel={StopMark}, MaxWords=40, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "') AS snippet,
                   d.external_url, d.source, d.connector_id, d.content_type, d.file_name
              FROM page p
              JOIN document_chunks c ON c.workspace_id = app_workspace_id() AND c.document_id = p.document_id AND c.ordinal = p.ordinal
              JOIN imported_documents d ON d.workspace_id = c.workspace_id AND d.id = p.document_id
             CROSS JOIN q
             ORDER BY p.rank DESC, p.document_id DESC, p.ordinal DESC
            """,
            new
            {
                config = pipeline.SearchConfiguration,
                q,
                connectorId,
                source,
                contentType,
                batchId,
                since = since?.ToUniversalTime(),
                until = until?.ToUniversalTime(),
                afterRank,
                afterDocument,
                afterOrdinal,
                take = take + 1,
            }, ct);
        var page = Paging.ToPage(rows, take, r => $"{r.Rank.ToString("R", CultureInfo.InvariantCulture)}|{r.DocumentId}|{r.Ordinal}");
        return TypedResults.Ok(new Page<SearchHit>(page.Items.Select(r => new SearchHit(r.DocumentId, r.Title, r.Ordinal, r.HeadingPath, r.PageStart, r.PageEnd,
            r.StartMs, r.EndMs, r.Speaker, SafeSnippet(r.Snippet), r.Rank, r.ExternalUrl, r.Source, r.ConnectorId, r.ContentType, r.FileName)).ToList(), page.NextCursor));
    }

    private static (float? Rank, Guid? Document, int? Ordinal) ReadCursor(string? cursor)
    {
        if (Paging.After(cursor) is not { } key)
        {
            return (null, null, null);
        }
        var parts = key.Split('|');
        return parts.Length == 3 && float.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var rank) && Guid.TryParse(parts[1], out var document)
            && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal)
            ? (rank, document, ordinal)
            : throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.");
    }

    /// <summary>The snippet HTML-encoded, with only &lt;mark&gt; around the matches.</summary>
    public static string SafeSnippet(string snippet)
    {
        var html = new System.Text.StringBuilder(snippet.Length + 32);
        var open = false;
        foreach (var piece in snippet.Split([StartMark, StopMark], StringSplitOptions.None).Select((text, i) => (text, i)))
        {
            if (piece.i > 0)
            {
                html.Append(open ? "</mark>" : "<mark>");
                open = !open;
            }
            html.Append(WebUtility.HtmlEncode(piece.text));
        }
        if (open)
        {
            html.Append("</mark>");
        }
        return html.ToString();
    }
}
