using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using Plugboard.Data;

namespace Plugboard.Features.Webhooks;

/// <summary>
/// Commits verified events, with their processing jobs, in batches: the requests waiting at one moment share one
/// statement (one transaction, one WAL flush) and the new events of each connector in it one job, so ingest costs a
/// fraction of a round trip per event. Each event is written only if its connector still has the row version the
/// request was verified against and its webhook is on; otherwise the request is told its endpoint changed and
/// verifies again. A request's events are all in one batch,
/// so they commit together. A batch that fails on one request's data is written again request by request, so only
/// that one fails; a batch that fails otherwise fails each of its requests (answered 5xx: the provider retries).
/// </summary>
public sealed class WebhookEventWriter : IAsyncDisposable
{
    public sealed record Row(Guid Id, string WorkspaceId, Guid ConnectorId, long RowVersion, IncomingEvent Event, string Verification);

    /// <param name="Current">False when the endpoint changed since it was read (nothing was written).</param>
    /// <param name="Stored">How many events were new (the rest repeated an event id).</param>
    public sealed record Outcome(bool Current, int Stored);

    private sealed record Pending(IReadOnlyList<Row> Rows, TaskCompletionSource<Outcome> Done);

    private const int MaxBatchRows = 500;
    private const long MaxBatchBytes = 16L << 20;
    private const int Writers = 2;

    private readonly Db _db;
    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.Wait });
    private readonly Task[] _writers;

    public WebhookEventWriter(Db db)
    {
        _db = db;
        _writers = [.. Enumerable.Range(0, Writers).Select(_ => Task.Run(WriteLoopAsync))];
    }

    public async Task<Outcome> WriteAsync(IReadOnlyList<Row> rows, CancellationToken ct)
    {
        var pending = new Pending(rows, new TaskCompletionSource<Outcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        await _queue.Writer.WriteAsync(pending, ct);
        return await pending.Done.Task;
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>();
        Pending? carried = null;
        while (carried is not null || await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            int rows = 0;
            long bytes = 0;
            // At most MaxBatchRows events and MaxBatchBytes of payload, but always at least one request.
            while (rows < MaxBatchRows && bytes < MaxBatchBytes && (carried is not null || _queue.Reader.TryRead(out carried)))
            {
                var size = carried.Rows.Sum(r => (long)r.Event.Payload.Length);
                if (batch.Count > 0 && bytes + size > MaxBatchBytes)
                {
                    break; // next batch
                }
                batch.Add(carried);
                rows += carried.Rows.Count;
                bytes += size;
                carried = null;
            }
            if (batch.Count == 0)
            {
                continue;
            }
            try
            {
                var written = await WriteBatchAsync(batch);
                foreach (var pending in batch)
                {
                    Complete(pending, written);
                }
            }
            catch (PostgresException e) when (!Http.ProblemExceptionHandler.IsUnavailable(e) && batch.Count > 1)
            {
                // One request's data failed the statement (e.g. a \u0000 in a string, or its connector deleted meanwhile):
                // each request is written again on its own, so only that one fails.
                foreach (var pending in batch)
                {
                    await WriteAloneAsync(pending);
                }
            }
            catch (Exception e)
            {
                Fail(batch, e);
            }
        }
    }

    private static void Fail(List<Pending> batch, Exception e)
    {
        foreach (var pending in batch)
        {
            pending.Done.TrySetException(e);
        }
    }

    private static void Complete(Pending pending, Dictionary<Guid, (bool Current, bool Stored)> written)
    {
        var current = pending.Rows.All(r => written.TryGetValue(r.Id, out var w) && w.Current);
        pending.Done.TrySetResult(new Outcome(current, current ? pending.Rows.Count(r => written[r.Id].Stored) : 0));
    }

    private async Task WriteAloneAsync(Pending pending)
    {
        try
        {
            Complete(pending, await WriteBatchAsync([pending]));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            // The connector was deleted after the request was verified: its endpoint changed.
            pending.Done.TrySetResult(new Outcome(false, 0));
        }
        catch (Exception e)
        {
            pending.Done.TrySetException(e);
        }
    }

    private const string BatchSql =
        $"""
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
                AS t(id, workspace_id, connector_id, row_version, event_type, external_id, payload, headers, verification, note)),
        current AS (
            SELECT i.* FROM input i
              JOIN connectors c ON c.workspace_id = i.workspace_id AND c.id = i.connector_id AND c.row_version = i.row_version AND c.webhook_active),
        stored AS (
            INSERT INTO connector_webhook_events (workspace_id, id, connector_id, event_type, external_id, payload, headers, signature_valid, verification, note)
            SELECT workspace_id, id, connector_id, event_type, external_id, payload::jsonb, headers::jsonb, true, verification, note FROM current
            ON CONFLICT (workspace_id, connector_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
            RETURNING workspace_id, connector_id, id),
        jobs AS (
            {WebhookJob.InsertForEventsSql}
              FROM stored e GROUP BY e.workspace_id, e.connector_id)
        SELECT i.id, c.id IS NOT NULL AS current, s.id IS NOT NULL AS stored
          FROM input i LEFT JOIN current c ON c.id = i.id LEFT JOIN stored s ON s.id = i.id
        """;

    private async Task<Dictionary<Guid, (bool Current, bool Stored)>> WriteBatchAsync(List<Pending> batch)
    {
        var rows = batch.SelectMany(p => p.Rows).ToList();
        await using var connection = await _db.Service.OpenConnectionAsync();
        // An explicit commit: the answer waits for it, and a failed commit fails the batch.
        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand(BatchSql, connection, transaction)
        {
            Parameters =
            {
                new() { Value = rows.Select(r => r.Id).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid },
                Text(rows.Select(r => r.WorkspaceId)),
                new() { Value = rows.Select(r => r.ConnectorId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid },
                new() { Value = rows.Select(r => r.RowVersion).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint },
                Text(rows.Select(r => r.Event.Type)),
                Text(rows.Select(r => r.Event.Id)),
                Text(rows.Select(r => r.Event.Payload)),
                Text(rows.Select(r => r.Event.Headers)),
                Text(rows.Select(r => r.Verification)),
                Text(rows.Select(r => r.Event.Note)),
            },
        };
        var result = new Dictionary<Guid, (bool, bool)>(rows.Count);
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                result[reader.GetGuid(0)] = (reader.GetBoolean(1), reader.GetBoolean(2));
            }
        }
        await transaction.CommitAsync();
        return result;
    }

    private static NpgsqlParameter Text(IEnumerable<string?> values) =>
        new() { Value = values.Select(v => (object?)v ?? DBNull.Value).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_writers);
    }
}
