using Npgsql;
using Plugboard.Data;

namespace Plugboard.Features.Health;

public sealed record Readiness(string Status, bool Database, long? SchemaVersion, long ExpectedSchemaVersion);

public static class HealthApi
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "ok" })).WithTags("Health").AllowAnonymous();
        app.MapGet("/readyz", Ready).WithTags("Health").AllowAnonymous().Produces<Readiness>().Produces<Readiness>(503);
    }

    /// <summary>Ready when the database answers and every migration this build knows is applied.</summary>
    private static async Task<IResult> Ready(Db db, CancellationToken ct)
    {
        long? version = null;
        var reachable = false;
        try
        {
            await using var connection = await db.Service.OpenConnectionAsync(ct);
            await using var command = new NpgsqlCommand("""SELECT max("Version") FROM "VersionInfo" """, connection);
            var value = await command.ExecuteScalarAsync(ct);
            reachable = true;
            version = value is long v ? v : null;
        }
        catch (NpgsqlException)
        {
        }
        // A newer schema is fine: migrations are written to be safe for the previous release during a rolling deploy.
        var ready = reachable && version >= Migrator.LatestVersion;
        var body = new Readiness(ready ? "ready" : "not_ready", reachable, version, Migrator.LatestVersion);
        return ready ? TypedResults.Ok(body) : TypedResults.Json(body, statusCode: 503);
    }
}
