using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Analytics;

/// <summary>One UTC day of a workspace's (or one connector's) activity.</summary>
public sealed record AnalyticsDay(DateOnly Day, long Succeeded, long Failed, long Other, double? DurationP50Ms, double? DurationP95Ms,
    long RecordsImported, long WebhookEvents);

public sealed record Analytics(Guid? ConnectorId, int Days, IReadOnlyList<AnalyticsDay> Series);

/// <summary>Daily activity for the last N UTC days (today included): executions by outcome (by creation day) and their
/// duration percentiles, records a sync created or updated (by the sync's creation day), webhook events received.</summary>
public static class AnalyticsApi
{
    public const int MaxDays = 90;

    public static void Map(RouteGroupBuilder workspace) =>
        workspace.MapGet("/analytics", Get).WithTags("Analytics").Produces<Analytics>();

    internal static async Task<IResult> Get(RequestDb db, int? days, [FromQuery(Name = "connector_id")] Guid? connectorId, CancellationToken ct)
    {
        var span = days ?? 14;
        if (span is < 1 or > MaxDays)
        {
            throw Problems.BadRequest($"days must be between 1 and {MaxDays}.");
        }
        if (connectorId is not null && !await db.QuerySingleOrDefaultAsync<bool>("SELECT EXISTS (SELECT 1 FROM connectors WHERE id = @connectorId)", new { connectorId }, ct))
        {
            throw Problems.NotFound("The connector");
        }
        var rows = await db.QueryAsync<DayRow>(
            """
            WITH days AS (
                SELECT day::date AS day, day AT TIME ZONE 'UTC' AS starts
                  FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - (@span - 1) * interval '1 day',
                                       date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS day)
            SELECT d.day::timestamp AS day, e.succeeded, e.failed, e.other, e.p50::float8 AS p50, e.p95::float8 AS p95, s.records::bigint AS records, w.events
              FROM days d
              CROSS JOIN LATERAL (
                  SELECT count(*) FILTER (WHERE x.status = 'succeeded') AS succeeded,
                         count(*) FILTER (WHERE x.status IN ('failed', 'timed_out')) AS failed,
                         count(*) FILTER (WHERE x.status NOT IN ('succeeded', 'failed', 'timed_out')) AS other,
                         percentile_cont(0.5) WITHIN GROUP (ORDER BY x.duration_ms) AS p50,
                         percentile_cont(0.95) WITHIN GROUP (ORDER BY x.duration_ms) AS p95
                    FROM connector_executions x
                   WHERE x.workspace_id = app_workspace_id() AND x.created_at >= d.starts AND x.created_at < d.starts + interval '1 day'
                     AND (@connectorId::uuid IS NULL OR x.connector_id = @connectorId)) e
              CROSS JOIN LATERAL (
                  SELECT coalesce(sum(l.records_created + l.records_updated), 0) AS records
                    FROM connector_sync_logs l
                   WHERE l.workspace_id = app_workspace_id() AND l.created_at >= d.starts AND l.created_at < d.starts + interval '1 day'
                     AND (@connectorId::uuid IS NULL OR l.connector_id = @connectorId)) s
              CROSS JOIN LATERAL (
                  SELECT count(*) AS events
                    FROM connector_webhook_events v
                   WHERE v.workspace_id = app_workspace_id() AND v.received_at >= d.starts AND v.received_at < d.starts + interval '1 day'
                     AND (@connectorId::uuid IS NULL OR v.connector_id = @connectorId)) w
             ORDER BY d.day
            """, new { span, connectorId }, ct);
        return TypedResults.Ok(new Analytics(connectorId, span, rows.Select(r => new AnalyticsDay(DateOnly.FromDateTime(r.Day), r.Succeeded, r.Failed, r.Other,
            r.P50, r.P95, r.Records, r.Events)).ToList()));
    }

    private sealed record DayRow
    {
        public DateTime Day { get; init; }
        public long Succeeded { get; init; }
        public long Failed { get; init; }
        public long Other { get; init; }
        public double? P50 { get; init; }
        public double? P95 { get; init; }
        public long Records { get; init; }
        public long Events { get; init; }
    }
}
