using System.Globalization;
using System.Text.Json;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Syncs;

/// <summary>One change of a synced document: what it is now and what last happened to it.</summary>
public sealed record ChangedRecord(Guid DocumentId, string ExternalId, string? Stream, string LastAction, string Title, string? ExternalUrl, string? ContentType,
    JsonElement SourceMetadata, string ProcessingStatus, DateTime CreatedAt, DateTime? LastChangedAt, DateTime? DeletedAt);

/// <summary><c>next_cursor</c> is always set: pass it back to get what changed after this page (even when it was empty).</summary>
public sealed record RecordsPage(IReadOnlyList<ChangedRecord> Items, string NextCursor, bool HasMore);

/// <summary>
/// The records feed: what a connector's syncs added, updated or deleted since a cursor, in the order of the workspace's
/// change sequence, so an application follows a connector without re-reading it. Each document appears once, with its
/// latest change; the cursor is a position in the sequence (stored in the database, so stable across restarts).
/// </summary>
public static class RecordsApi
{
    public static readonly string[] Actions = ["added", "updated", "deleted"];

    private sealed record Row
    {
        public long ChangeSeq { get; init; }
        public Guid Id { get; init; }
        public string ExternalId { get; init; } = "";
        public string? Stream { get; init; }
        public string LastAction { get; init; } = "";
        public string Title { get; init; } = "";
        public string? ExternalUrl { get; init; }
        public string? ContentType { get; init; }
        public string SourceMetadata { get; init; } = "{}";
        public string ProcessingStatus { get; init; } = "";
        public DateTime CreatedAt { get; init; }
        public DateTime? LastChangedAt { get; init; }
        public DateTime? DeletedAt { get; init; }
    }

    public static void Map(RouteGroupBuilder workspace) =>
        workspace.MapGet("/connectors/{connectorId:guid}/records", List).WithTags("Syncs").Produces<RecordsPage>();

    internal static async Task<IResult> List(Guid connectorId, RequestDb db, string? cursor, string? action, int? limit, CancellationToken ct)
    {
        if (!await db.QuerySingleOrDefaultAsync<bool>("SELECT EXISTS (SELECT FROM connectors WHERE id = @connectorId)", new { connectorId }, ct))
        {
            throw Problems.NotFound("The connector");
        }
        var actions = action is null ? Actions : action.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (actions.Length == 0 || actions.Any(a => !Actions.Contains(a)))
        {
            throw Problems.BadRequest($"action must be a comma-separated list of: {string.Join(", ", Actions)}.");
        }
        var after = Paging.After(cursor) is { } key
            ? long.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var seq) ? seq : throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.")
            : 0;
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<Row>(
            """
            SELECT change_seq, id, external_id, stream, last_action, title, external_url, content_type, source_metadata::text AS source_metadata,
                   processing_status, created_at, last_changed_at, deleted_at
              FROM imported_documents
             WHERE connector_id = @connectorId AND change_seq > @after AND last_action = ANY(@actions)
             ORDER BY change_seq
             LIMIT @take
            """, new { connectorId, after, actions, take = take + 1 }, ct);
        var items = rows.Take(take).ToList();
        var next = items.Count > 0 ? items[^1].ChangeSeq : after;
        return TypedResults.Ok(new RecordsPage(
            items.Select(r => new ChangedRecord(r.Id, r.ExternalId, r.Stream, r.LastAction, r.Title, r.ExternalUrl, r.ContentType, JsonColumns.Element(r.SourceMetadata),
                r.ProcessingStatus, r.CreatedAt, r.LastChangedAt, r.DeletedAt)).ToList(),
            Paging.Cursor(next.ToString(CultureInfo.InvariantCulture)), rows.Count > take));
    }
}
