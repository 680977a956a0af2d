using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Running;

namespace Plugboard.Features.Syncs;

/// <summary>
/// A running sync's requests and pages, written to its log as they happen (at most every half second), so its live
/// stream shows progress. Best effort: a failed write is logged and the sync goes on; the final counts are written
/// with the import.
/// </summary>
public sealed class SyncProgress(Db db, string workspaceId, Guid syncId, ILogger logger) : IRunObserver
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);
    private readonly Lock _gate = new();
    private int _requests, _pages;
    private DateTime _lastWrite = DateTime.MinValue;

    public async ValueTask OnStepAsync(StepLogEntry entry, CancellationToken ct)
    {
        int requests, pages;
        lock (_gate)
        {
            if (!entry.Skipped)
            {
                _requests++;
            }
            if (entry.Status is >= 200 and < 300)
            {
                _pages++;
            }
            if (DateTime.UtcNow - _lastWrite < Interval)
            {
                return;
            }
            _lastWrite = DateTime.UtcNow;
            (requests, pages) = (_requests, _pages);
        }
        try
        {
            await using var connection = await db.Service.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE connector_sync_logs SET requests = @requests, pages = @pages WHERE workspace_id = @workspaceId AND id = @syncId AND status = 'running'",
                new { requests, pages, workspaceId, syncId }, cancellationToken: ct));
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            logger.LogWarning("Sync {SyncId}: writing its progress failed ({Reason}); the sync goes on", syncId, e.Message);
        }
    }
}
