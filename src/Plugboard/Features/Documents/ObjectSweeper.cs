using Dapper;
using Plugboard.Data;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// Deletes objects stored without their document row: an upload that crashed, or failed and could not clean up,
/// between storing and recording. Intents older than the grace period (PLUGBOARD_UPLOAD_ORPHAN_HOURS, default 6) are
/// taken row-locked (SKIP LOCKED: any number of workers sweep without colliding) and marked before their objects are
/// deleted; a recording that comes later finds its intent marked or gone and records nothing. Runs on worker processes every five minutes, and also removes temporary files
/// (spooled uploads, copies made for processing) older than the grace period.
/// </summary>
public sealed class ObjectSweeper(Db db, IObjectStore store, DocumentPipelineOptions pipeline, IConfiguration configuration, ILogger<ObjectSweeper> logger) : BackgroundService
{
    private readonly TimeSpan _grace = GracePeriod(configuration);

    /// <summary>How long an object may wait for its record before it counts as abandoned (PLUGBOARD_UPLOAD_ORPHAN_HOURS).</summary>
    public static TimeSpan GracePeriod(IConfiguration configuration) =>
        TimeSpan.FromHours(Hosting.Settings.Number(configuration, "PLUGBOARD_UPLOAD_ORPHAN_HOURS", 6, 0.01, 24 * 30));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(5));
        do
        {
            try
            {
                await SweepAsync(_grace, stoppingToken);
                SweepTemporaryFiles(_grace);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Sweeping unrecorded objects failed; it is tried again in five minutes");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Deletes spooled uploads and processing copies older than <paramref name="olderThan"/> that a crashed process left behind.</summary>
    public int SweepTemporaryFiles(TimeSpan olderThan)
    {
        if (!Directory.Exists(pipeline.TemporaryDirectory))
        {
            return 0;
        }
        var deleted = 0;
        foreach (var file in new DirectoryInfo(pipeline.TemporaryDirectory).EnumerateFiles())
        {
            if (file.LastWriteTimeUtc < DateTime.UtcNow - olderThan)
            {
                try
                {
                    file.Delete();
                    deleted++;
                }
                catch (IOException)
                {
                    // In use (another process still writes it) or gone: the next sweep looks again.
                }
            }
        }
        return deleted;
    }

    /// <summary>
    /// Removes the objects of intents older than <paramref name="olderThan"/>; returns how many objects it deleted. In two
    /// steps: the intents are marked (committed: from then on no upload records under them), then each object is deleted
    /// and its intent with it. A delete that fails leaves the intent marked, for the next sweep, even when the store
    /// removed the object before failing.
    /// </summary>
    public async Task<int> SweepAsync(TimeSpan olderThan, CancellationToken ct)
    {
        var deleted = 0;
        while (true)
        {
            List<string> marked;
            await using (var connection = await db.Service.OpenConnectionAsync(ct))
            {
                marked = (await connection.QueryAsync<string>(new CommandDefinition(
                    """
                    UPDATE pending_objects SET swept_at = coalesce(swept_at, now())
                     WHERE object_key IN (SELECT object_key FROM pending_objects WHERE created_at < now() - @olderThan
                                           ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED)
                    RETURNING object_key
                    """, new { olderThan }, cancellationToken: ct))).AsList();
            }
            if (marked.Count == 0)
            {
                return deleted;
            }
            var done = await DeleteMarkedAsync(marked, ct);
            deleted += done;
            logger.LogInformation("Deleted {Count} objects stored without their document", done);
            if (done == 0)
            {
                return deleted; // every remaining one fails for now
            }
        }
    }

    /// <summary>Deletes the objects of marked intents (those an upload cleaning up is not holding) and their intents.</summary>
    private async Task<int> DeleteMarkedAsync(List<string> marked, CancellationToken ct)
    {
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var keys = (await connection.QueryAsync<string>(new CommandDefinition(
            "SELECT object_key FROM pending_objects WHERE object_key = ANY(@marked) AND swept_at IS NOT NULL FOR UPDATE SKIP LOCKED",
            new { marked }, transaction, cancellationToken: ct))).AsList();
        var done = new List<string>();
        foreach (var key in keys)
        {
            try
            {
                await store.DeleteAsync(key, ct);
                done.Add(key);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                // One object the store refuses to delete must not stop the others: its intent stays marked for the next sweep.
                logger.LogWarning(e, "Could not delete the unrecorded object {Key}", key);
            }
        }
        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM pending_objects WHERE object_key = ANY(@done)", new { done }, transaction));
        await transaction.CommitAsync(CancellationToken.None);
        return done.Count;
    }
}
