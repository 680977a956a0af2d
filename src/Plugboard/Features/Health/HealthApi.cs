using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Security;

namespace Plugboard.Features.Health;

public sealed record WorkerLiveness(int Live, DateTime? LastBeatAt);

/// <param name="Reason">Why it is not ready (null when ready): what an operator should look at.</param>
public sealed record Readiness(string Status, bool Database, long? SchemaVersion, long ExpectedSchemaVersion, bool KeyRing, WorkerLiveness? Workers, string? Reason);

public static class HealthApi
{
    /// <summary>A worker whose last beat is older than this is not counted as live.</summary>
    public static readonly TimeSpan LiveWithin = TimeSpan.FromSeconds(60);

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "ok" })).WithTags("Health").AllowAnonymous();
        app.MapGet("/readyz", Ready).WithTags("Health").AllowAnonymous().Produces<Readiness>().Produces<Readiness>(503);
    }

    /// <summary>
    /// Ready when the database answers, every migration this build knows is applied and this process's key ring
    /// decrypts the canary. Live workers (heartbeats within a minute) are reported, not required: an API node is
    /// ready without them.
    /// </summary>
    private static async Task<IResult> Ready(Db db, KeyRing keys, HttpContext http, CancellationToken ct)
    {
        long? version = null;
        var reachable = false;
        string? reason = null;
        var keyRing = false;
        WorkerLiveness? workers = null;
        try
        {
            await using (var connection = await db.Service.OpenConnectionAsync(ct))
            {
                version = await connection.ExecuteScalarAsync<long?>(new CommandDefinition("""SELECT max("Version") FROM "VersionInfo" """, cancellationToken: ct));
                reachable = true;
                // A newer schema is fine: migrations are written to be safe for the previous release during a rolling deploy.
                if (version >= Migrator.LatestVersion)
                {
                    workers = await connection.QuerySingleAsync<WorkerLiveness>(new CommandDefinition(
                        "SELECT count(*)::int AS live, max(beat_at) AS last_beat_at FROM worker_heartbeats WHERE beat_at > now() - @within",
                        new { within = LiveWithin }, cancellationToken: ct));
                }
            }
            if (version < Migrator.LatestVersion || version is null)
            {
                reason = $"the database schema is at migration {version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, this build needs {Migrator.LatestVersion}: run `plugboard migrate up`";
            }
            else
            {
                reason = await KeyRingCanary.ProblemAsync(db, keys, ct);
                keyRing = reason is null;
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            reason = $"the database does not answer ({(e as PostgresException)?.SqlState ?? e.GetType().Name})";
        }
        var ready = reason is null;
        if (!ready)
        {
            http.Response.Headers.RetryAfter = "5";
        }
        var body = new Readiness(ready ? "ready" : "not_ready", reachable, version, Migrator.LatestVersion, keyRing, workers, reason);
        return ready ? TypedResults.Ok(body) : TypedResults.Json(body, statusCode: 503);
    }
}
