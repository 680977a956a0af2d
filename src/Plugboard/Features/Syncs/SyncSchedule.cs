using Cronos;

namespace Plugboard.Features.Syncs;

/// <summary>
/// When a connector syncs by itself: <c>manual</c> (never), <c>realtime</c> (only when a webhook says so), a fixed
/// interval (<c>15m</c>, <c>hourly</c>, <c>daily</c>, <c>weekly</c>: the next run is the last start plus the interval),
/// or a five-field cron expression read in an IANA time zone (Cronos: a time skipped by a daylight-saving jump runs
/// at the jump, a repeated hour runs once for fixed times).
/// </summary>
public sealed class SyncSchedule
{
    public const int MaxExpressionLength = 100;
    private static readonly Dictionary<string, TimeSpan> Intervals = new(StringComparer.Ordinal)
    {
        ["15m"] = TimeSpan.FromMinutes(15),
        ["hourly"] = TimeSpan.FromHours(1),
        ["daily"] = TimeSpan.FromDays(1),
        ["weekly"] = TimeSpan.FromDays(7),
    };

    /// <summary>The words a frequency may be besides a cron expression.</summary>
    public static readonly string[] Names = ["manual", "realtime", .. Intervals.Keys];

    private readonly TimeSpan? _interval;
    private readonly CronExpression? _cron;
    private readonly TimeZoneInfo _zone;

    private SyncSchedule(string frequency, TimeSpan? interval, CronExpression? cron, TimeZoneInfo zone)
    {
        Frequency = frequency;
        _interval = interval;
        _cron = cron;
        _zone = zone;
    }

    public string Frequency { get; }

    /// <summary>The IANA id the schedule is read in.</summary>
    public string TimeZone => _zone.Id;

    /// <summary>False for <c>manual</c> and <c>realtime</c>: nothing starts such a connector on a clock.</summary>
    public bool IsScheduled => _interval is not null || _cron is not null;

    /// <summary>Reads a frequency and its time zone, or says what is wrong with them (for a 422).</summary>
    public static bool TryParse(string frequency, string? timeZone, out SyncSchedule schedule, out string? error)
    {
        schedule = null!;
        var zoneId = string.IsNullOrWhiteSpace(timeZone) ? "UTC" : timeZone.Trim();
        if (!TimeZoneInfo.TryFindSystemTimeZoneById(zoneId, out var zone))
        {
            error = $"sync_timezone must be an IANA time zone such as Europe/Berlin or UTC; '{zoneId}' is not one.";
            return false;
        }
        var text = frequency.Trim();
        if (text is "manual" or "realtime")
        {
            schedule = new SyncSchedule(text, null, null, zone);
            error = null;
            return true;
        }
        if (Intervals.TryGetValue(text, out var interval))
        {
            schedule = new SyncSchedule(text, interval, null, zone);
            error = null;
            return true;
        }
        if (text.Length is 0 or > MaxExpressionLength || text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length != 5)
        {
            error = $"sync_frequency must be one of {string.Join(", ", Names)}, or a cron expression of five fields (minute hour day month weekday) such as '0 9 * * 1-5'.";
            return false;
        }
        try
        {
            schedule = new SyncSchedule(text, null, CronExpression.Parse(text, CronFormat.Standard), zone);
            error = null;
            return true;
        }
        catch (Exception e) when (e is CronFormatException || e.GetType().Name == "MissingSeedException")
        {
            error = $"sync_frequency '{text}' is not a valid cron expression: {e.Message}";
            return false;
        }
    }

    /// <summary>
    /// The next start after a run that started at <paramref name="lastStart"/> (null: none yet), seen at
    /// <paramref name="now"/>: an interval runs at once when it never ran or is overdue, a cron expression at its next
    /// occurrence after now. Null when nothing is scheduled.
    /// </summary>
    public DateTimeOffset? Next(DateTimeOffset now, DateTimeOffset? lastStart)
    {
        if (_interval is { } interval)
        {
            return lastStart is { } last && last + interval > now ? last + interval : now;
        }
        return _cron?.GetNextOccurrence(now, _zone)?.ToUniversalTime();
    }

    /// <summary>The start after the one due at <paramref name="due"/>, for the scheduler that starts it at <paramref name="now"/>.</summary>
    public DateTimeOffset? After(DateTimeOffset due, DateTimeOffset now)
    {
        if (_interval is { } interval)
        {
            // Missed starts are not replayed: the next is one interval after this start, counted from now when overdue.
            var next = due + interval;
            return next > now ? next : now + interval;
        }
        return _cron?.GetNextOccurrence(now, _zone)?.ToUniversalTime();
    }
}
