using System.Data;
using System.Text.Json;
using Dapper;
using Npgsql;
using NpgsqlTypes;
using Plugboard.Data;

namespace Plugboard.Jobs;

public enum FailOutcome
{
    /// <summary>Back in the queue for another attempt after a delay.</summary>
    Retrying,

    /// <summary>Out of attempts, or failed permanently: kept as a dead letter.</summary>
    Dead,

    /// <summary>This worker no longer held the lease (it expired and the job was reclaimed, or it was cancelled).</summary>
    LeaseLost,
}

public enum OperatorOutcome
{
    Done,
    NotFound,
    WrongState,
}

/// <summary>
/// The durable job queue on PostgreSQL: enqueue in the caller's transaction, claim due jobs in fair batches
/// (round-robin across workspaces, concurrency limits per key) under a lease, complete exactly once in the
/// handler's own transaction, retry with backoff, keep dead letters for operators.
/// </summary>
public sealed class JobQueue : IAsyncDisposable
{
    public const string Channel = "plugboard_jobs";

    /// <summary>Notifications whose payload is the cancel key of a running job (see <see cref="JobCancellations"/>).</summary>
    public const string CancelChannel = "plugboard_cancel";
    public const int MaxErrorLength = 4000;

    /// <summary>One claimer at a time in the whole cluster, so concurrency limits hold across processes.</summary>
    /// <summary>True for the job row only while this worker holds this attempt's lease (parameters JobId, JobAttempt, JobWorker).</summary>
    internal const string LeaseHeld = "id = @JobId AND attempts = @JobAttempt AND state = 'running' AND locked_by = @JobWorker";

    /// <summary>
    /// First statement of a batch whose commit need not wait for the WAL flush: claims and "running" marks, which a
    /// crash may lose without harm (the job is claimed again). PostgreSQL flushes WAL in order, so any later durable
    /// commit — a job's completion — makes them durable too; completions themselves stay synchronous.
    /// </summary>
    internal const string NoFlushOnCommit = "SELECT set_config('synchronous_commit', 'off', true)";

    /// <summary>
    /// The claim's transaction: no WAL flush wait (see <see cref="NoFlushOnCommit"/>), and no bitmap scans. A queue
    /// table swings between empty and a large backlog faster than statistics follow, and a plan made for the empty
    /// table (a bitmap scan, then a sort) reads the whole backlog and every dead index entry on each claim, where
    /// ordered index scans read the few rows the LIMIT needs and mark dead entries as they pass, so later scans skip
    /// them. (For the same reason every ORDER BY under a LIMIT below spells out its index's full order.)
    /// </summary>
    private const string ClaimSettings = "SELECT set_config('synchronous_commit', 'off', true), set_config('enable_bitmapscan', 'off', true)";

    private const long ClaimLockKey = 0x706c7567_6a6f6273; // "plugjobs"

    internal static readonly JsonSerializerOptions PayloadJson = new(JsonSerializerDefaults.Web);

    private const string SweepSql =
        """
        WITH swept AS (
            UPDATE jobs SET state = 'dead', locked_by = NULL, lease_expires_at = NULL, finished_at = now(),
                   last_error = left('The lease expired during the final attempt (the worker stopped or lost the database).'
                                     || coalesce(E'\nPrevious error: ' || last_error, ''), 4000)
             WHERE state = 'running' AND lease_expires_at < now() AND attempts >= max_attempts AND kind = ANY($1)
            RETURNING 1
        )
        SELECT count(*)::int FROM swept
        """;

    // Candidates: the due head of the queue, the due heads of the next workspaces after a rotating cursor (a skip
    // scan that wraps around, so a workspace behind another's large backlog is still seen), and expired leases.
    // Inside them, jobs are ranked per workspace so each workspace's first job comes before any workspace's second;
    // at equal rank and priority, workspaces take turns in order after the cursor. A keyed job is taken only while
    // its rank among its key's candidates plus the key's running jobs stays within the limit.
    private const string ClaimSql =
        $"""
        WITH RECURSIVE spaces(w, n, wrapped) AS (
            SELECT (SELECT coalesce(workspace_id, '') COLLATE "C" FROM jobs
                     WHERE state = 'available' AND coalesce(workspace_id, '') COLLATE "C" > $6
                     ORDER BY 1 LIMIT 1), 1, false
            UNION ALL
            SELECT (SELECT coalesce(j.workspace_id, '') COLLATE "C" FROM jobs j
                     WHERE j.state = 'available' AND coalesce(j.workspace_id, '') COLLATE "C" > coalesce(s.w, '')
                     ORDER BY 1 LIMIT 1), s.n + 1, s.wrapped OR s.w IS NULL
              FROM spaces s
             WHERE s.n < $7 AND NOT (s.wrapped AND (s.w IS NULL OR s.w > $6))
        ),
        candidates AS (
            (SELECT id, workspace_id, concurrency_key, concurrency_limit, priority, run_at
               FROM jobs
              WHERE state = 'available' AND run_at <= now() AND kind = ANY($1)
              ORDER BY priority DESC, run_at
              LIMIT $2)
            UNION
            SELECT h.* FROM spaces s CROSS JOIN LATERAL (
                SELECT id, workspace_id, concurrency_key, concurrency_limit, priority, run_at
                  FROM jobs
                 WHERE state = 'available' AND coalesce(workspace_id, '') COLLATE "C" = s.w AND run_at <= now() AND kind = ANY($1)
                 ORDER BY coalesce(workspace_id, '') COLLATE "C", priority DESC, run_at
                 LIMIT $8) h
             WHERE s.w IS NOT NULL
            UNION
            (SELECT id, workspace_id, concurrency_key, concurrency_limit, priority, run_at
               FROM jobs
              WHERE state = 'running' AND lease_expires_at < now() AND attempts < max_attempts AND kind = ANY($1)
              ORDER BY lease_expires_at
              LIMIT $2)
        ),
        ranked AS (
            SELECT c.*,
                   row_number() OVER (PARTITION BY c.workspace_id ORDER BY c.priority DESC, c.run_at, c.id) AS workspace_rank,
                   row_number() OVER (PARTITION BY c.concurrency_key ORDER BY c.priority DESC, c.run_at, c.id) AS key_rank
              FROM candidates c
        ),
        busy AS (
            SELECT k.concurrency_key,
                   (SELECT count(*) FROM jobs j
                     WHERE j.state = 'running' AND j.concurrency_key = k.concurrency_key AND j.lease_expires_at >= now()) AS running
              FROM (SELECT DISTINCT r.concurrency_key FROM ranked r WHERE r.concurrency_key IS NOT NULL) k
        ),
        chosen AS (
            SELECT r.id
              FROM ranked r LEFT JOIN busy b ON b.concurrency_key = r.concurrency_key
             WHERE r.concurrency_key IS NULL OR r.key_rank + coalesce(b.running, 0) <= r.concurrency_limit
             ORDER BY r.workspace_rank, r.priority DESC,
                      coalesce(r.workspace_id, '') COLLATE "C" <= $6, coalesce(r.workspace_id, '') COLLATE "C", r.run_at
             LIMIT $3
        ),
        locked AS (
            SELECT j.id FROM jobs j
             WHERE j.id IN (SELECT id FROM chosen)
               AND (j.state = 'available' OR (j.state = 'running' AND j.lease_expires_at < now()))
               FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs j
           SET state = 'running', attempts = j.attempts + 1, locked_by = $4, lease_expires_at = now() + $5
          FROM locked l
         WHERE j.id = l.id
        RETURNING j.id, j.kind, j.workspace_id, j.payload::text, j.concurrency_key, j.priority, j.attempts, j.max_attempts, j.lease_expires_at, j.created_at
        """;

    private readonly NpgsqlDataSource _source;

    public JobQueue(Db db)
    {
        Db = db;
        // The queue's own pool on the service role: prepared claim/complete statements survive between uses.
        _source = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(db.Settings.ServiceConnectionString)
        {
            ApplicationName = "plugboard-jobs",
            PersistSecurityInfo = false,
            IncludeErrorDetail = false,
            MaxAutoPrepare = 32,
            NoResetOnClose = true,
        }.ConnectionString).Build();
    }

    public Db Db { get; }

    private volatile string _workspaceCursor = "";

    // Enqueue ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Inserts a job in the caller's transaction: it becomes visible (and wakes workers) only when that transaction
    /// commits. Works on the API role too (for the request's own workspace) and on the service role.
    /// </summary>
    public static async Task<Guid> EnqueueAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, JobRequest job, CancellationToken ct)
    {
        var parameters = new DynamicParameters();
        var id = AddInsertParameters(parameters, job);
        await connection.ExecuteAsync(new CommandDefinition(InsertOneSql, parameters, transaction, cancellationToken: ct));
        return id;
    }

    /// <summary>
    /// The INSERT of one job, for a statement that also writes the row the job works on (as a data-modifying
    /// <c>WITH</c>), so both take one round trip. Its parameters are prefixed <c>job_</c>: <see cref="AddInsertParameters"/>.
    /// </summary>
    public const string InsertOneSql =
        """
        INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, priority, run_at, max_attempts)
        VALUES (@job_id, @job_kind, @job_payload::jsonb, @job_workspace_id, @job_concurrency_key, @job_concurrency_limit, @job_priority,
                coalesce(@job_run_at, now()), @job_max_attempts)
        """;

    /// <summary>The same INSERT as <see cref="InsertOneSql"/> from a SELECT, for a caller that appends a WHERE (a job only if its row was written).</summary>
    public const string InsertOneSelectSql =
        """
        INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, priority, run_at, max_attempts)
        SELECT @job_id, @job_kind, @job_payload::jsonb, @job_workspace_id, @job_concurrency_key, @job_concurrency_limit, @job_priority,
               coalesce(@job_run_at, now()), @job_max_attempts
        """;

    /// <summary>Adds the parameters of <see cref="InsertOneSql"/> for <paramref name="job"/>; returns the job's id.</summary>
    public static Guid AddInsertParameters(DynamicParameters parameters, JobRequest job)
    {
        var id = job.Id ?? Guid.CreateVersion7();
        parameters.Add("job_id", id);
        parameters.Add("job_kind", job.Kind);
        parameters.Add("job_payload", SerializePayload(job.Payload));
        parameters.Add("job_workspace_id", job.WorkspaceId);
        parameters.Add("job_concurrency_key", job.ConcurrencyKey);
        parameters.Add("job_concurrency_limit", job.ConcurrencyLimit);
        parameters.Add("job_priority", job.Priority);
        parameters.Add("job_run_at", job.RunAt);
        parameters.Add("job_max_attempts", job.MaxAttempts);
        return id;
    }

    /// <summary>Inserts a job in the current request's transaction (the API role, the request's workspace).</summary>
    public static async Task<Guid> EnqueueAsync(RequestDb db, JobRequest job, CancellationToken ct)
    {
        var parameters = new DynamicParameters();
        var id = AddInsertParameters(parameters, job);
        await db.ExecuteAsync(InsertOneSql, parameters, ct);
        return id;
    }

    /// <summary>Inserts many jobs in one statement (one wake-up) in the caller's transaction.</summary>
    public static async Task<IReadOnlyList<Guid>> EnqueueManyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, IReadOnlyList<JobRequest> jobs, CancellationToken ct)
    {
        var ids = jobs.Select(j => j.Id ?? Guid.CreateVersion7()).ToArray();
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO jobs (id, kind, payload, workspace_id, concurrency_key, concurrency_limit, priority, run_at, max_attempts)
            SELECT t.id, t.kind, t.payload::jsonb, t.workspace_id, t.concurrency_key, t.concurrency_limit, t.priority, coalesce(t.run_at, now()), t.max_attempts
              FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   AS t(id, kind, payload, workspace_id, concurrency_key, concurrency_limit, priority, run_at, max_attempts)
            """, connection, transaction)
        {
            Parameters =
            {
                new() { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid },
                new() { Value = jobs.Select(j => j.Kind).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
                new() { Value = jobs.Select(j => SerializePayload(j.Payload)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
                new() { Value = jobs.Select(j => (object?)j.WorkspaceId ?? DBNull.Value).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
                new() { Value = jobs.Select(j => (object?)j.ConcurrencyKey ?? DBNull.Value).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text },
                new() { Value = jobs.Select(j => j.ConcurrencyLimit).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer },
                new() { Value = jobs.Select(j => j.Priority).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Smallint },
                new() { Value = jobs.Select(j => j.RunAt is { } t ? (object)t.UtcDateTime : DBNull.Value).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz },
                new() { Value = jobs.Select(j => j.MaxAttempts).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer },
            },
        };
        await command.ExecuteNonQueryAsync(ct);
        return ids;
    }

    private static string SerializePayload(object? payload) => payload switch
    {
        null => "{}",
        JsonElement e => e.GetRawText(),
        _ => JsonSerializer.Serialize(payload, PayloadJson),
    };

    // Work ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// Claims up to <paramref name="maxJobs"/> due jobs of the given kinds (all kinds when null) for
    /// <paramref name="workerId"/>: fair across workspaces, within each key's concurrency limit, and including
    /// running jobs whose lease expired (each claim counts as an attempt; an expired final attempt goes dead).
    /// </summary>
    public async Task<IReadOnlyList<ClaimedJob>> ClaimAsync(string workerId, int maxJobs, TimeSpan lease, CancellationToken ct, IReadOnlyCollection<string>? kinds = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxJobs, 1);
        var kindFilter = kinds?.ToArray();
        await using var connection = await _source.OpenConnectionAsync(ct);
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(ClaimSettings),
                new NpgsqlBatchCommand($"SELECT pg_advisory_xact_lock({ClaimLockKey})"),
                new NpgsqlBatchCommand(SweepSql.Replace("kind = ANY($1)", kindFilter is null ? "true" : "kind = ANY($1)", StringComparison.Ordinal)),
                new NpgsqlBatchCommand(kindFilter is null ? ClaimSql.Replace("kind = ANY($1)", "$1::text[] IS NULL", StringComparison.Ordinal) : ClaimSql),
            },
        };
        if (kindFilter is not null)
        {
            batch.BatchCommands[2].Parameters.Add(new() { Value = kindFilter, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        }
        var claim = batch.BatchCommands[3].Parameters;
        claim.Add(new() { Value = (object?)kindFilter ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        // Sizes measured on 10,000 queued jobs: a claim of 20 reads the 20-job due head plus up to 5 due jobs of each
        // of the next 10 workspaces (~0.5 ms of server time; the bare SKIP LOCKED claim is ~0.2 ms).
        claim.Add(new() { Value = Math.Max(16, maxJobs), NpgsqlDbType = NpgsqlDbType.Integer });
        claim.Add(new() { Value = maxJobs, NpgsqlDbType = NpgsqlDbType.Integer });
        claim.Add(new() { Value = workerId, NpgsqlDbType = NpgsqlDbType.Text });
        claim.Add(new() { Value = lease, NpgsqlDbType = NpgsqlDbType.Interval });
        claim.Add(new() { Value = _workspaceCursor, NpgsqlDbType = NpgsqlDbType.Text });
        claim.Add(new() { Value = Math.Max(8, maxJobs / 2), NpgsqlDbType = NpgsqlDbType.Integer });
        claim.Add(new() { Value = Math.Max(2, (maxJobs + 3) / 4), NpgsqlDbType = NpgsqlDbType.Integer });

        // Prepared once per physical connection (the pool keeps them: NoResetOnClose), so the claim is not re-planned.
        await batch.PrepareAsync(ct);
        var jobs = new List<ClaimedJob>(maxJobs);
        var swept = 0;
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            await reader.NextResultAsync(ct); // settings → lock
            await reader.NextResultAsync(ct); // lock → sweep
            if (await reader.ReadAsync(ct))
            {
                swept = reader.GetInt32(0);
            }
            await reader.NextResultAsync(ct); // sweep → claim
            while (await reader.ReadAsync(ct))
            {
                using var payload = JsonDocument.Parse(reader.GetString(3));
                jobs.Add(new ClaimedJob(
                    reader.GetGuid(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), payload.RootElement.Clone(),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt16(5), reader.GetInt32(6), reader.GetInt32(7), workerId,
                    reader.GetDateTime(8), reader.GetDateTime(9)));
            }
        }
        // Round-robin: the next claim starts after the last workspace served here, in turn order (after the cursor, then wrapped).
        _workspaceCursor = NextCursor(_workspaceCursor, jobs);
        if (swept > 0)
        {
            JobMetrics.Dead.Add(swept);
        }
        JobMetrics.Claimed.Add(jobs.Count);
        return jobs;
    }

    private static string NextCursor(string cursor, List<ClaimedJob> jobs)
    {
        if (jobs.Count == 0)
        {
            return "";
        }
        var served = jobs.Select(j => j.WorkspaceId ?? "").ToList();
        var wrapped = served.Where(w => string.CompareOrdinal(w, cursor) <= 0).ToList();
        return (wrapped.Count > 0 ? wrapped : served).Max(StringComparer.Ordinal) ?? "";
    }

    /// <summary>Extends the leases this worker still holds; returns the ids it holds (the rest were lost).</summary>
    public async Task<IReadOnlySet<Guid>> RenewAsync(string workerId, IReadOnlyCollection<ClaimedJob> jobs, TimeSpan lease, CancellationToken ct)
    {
        if (jobs.Count == 0)
        {
            return new HashSet<Guid>();
        }
        await using var connection = await _source.OpenConnectionAsync(ct);
        var held = await connection.QueryAsync<Guid>(new CommandDefinition(
            """
            UPDATE jobs j SET lease_expires_at = now() + @lease
              FROM unnest(@ids, @attempts) AS t(id, attempt)
             WHERE j.id = t.id AND j.attempts = t.attempt AND j.state = 'running' AND j.locked_by = @workerId
            RETURNING j.id
            """, new { lease, ids = jobs.Select(j => j.Id).ToArray(), attempts = jobs.Select(j => j.Attempt).ToArray(), workerId }, cancellationToken: ct));
        return held.ToHashSet();
    }

    /// <summary>
    /// Deletes the job if this worker still holds its lease, in the caller's transaction: call it in the transaction
    /// that writes the job's results, and roll back when it returns false, so results apply exactly once even if
    /// this worker was presumed dead and the job was claimed again. The row lock taken here keeps any reclaim
    /// waiting until the caller commits or rolls back.
    /// </summary>
    public static async Task<bool> CompleteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, ClaimedJob job, CancellationToken ct)
    {
        var deleted = await connection.ExecuteAsync(new CommandDefinition(
            $"DELETE FROM jobs WHERE {LeaseHeld}",
            new { JobId = job.Id, JobAttempt = job.Attempt, JobWorker = job.WorkerId }, transaction, cancellationToken: ct));
        if (deleted == 1)
        {
            JobMetrics.Completed.Add(1);
        }
        return deleted == 1;
    }

    /// <summary>Records that a worker is alive (upserting its heartbeat row): at start and with every lease renewal round.</summary>
    public async Task BeatAsync(string workerId, IReadOnlyCollection<string> kinds, int slots, int running, CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            INSERT INTO worker_heartbeats (worker_id, host, pid, kinds, slots, running)
            VALUES (@workerId, @host, @pid, @kinds, @slots, @running)
            ON CONFLICT (worker_id) DO UPDATE SET running = excluded.running, beat_at = now()
            """,
            new { workerId, host = Environment.MachineName, pid = Environment.ProcessId, kinds = kinds.ToArray(), slots, running }, cancellationToken: ct));
    }

    /// <summary>A worker that stops cleanly removes its heartbeat; a crashed one's row simply ages.</summary>
    public async Task RemoveHeartbeatAsync(string workerId, CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("DELETE FROM worker_heartbeats WHERE worker_id = @workerId", new { workerId }, cancellationToken: ct));
    }

    /// <summary>Completes many jobs of one worker in one statement (handlers that wrote nothing of their own); returns the ids deleted.</summary>
    public async Task<IReadOnlySet<Guid>> CompleteManyAsync(IReadOnlyCollection<ClaimedJob> jobs, CancellationToken ct)
    {
        if (jobs.Count == 0)
        {
            return new HashSet<Guid>();
        }
        await using var connection = await _source.OpenConnectionAsync(ct);
        var deleted = (await connection.QueryAsync<Guid>(new CommandDefinition(
            """
            DELETE FROM jobs j
             USING unnest(@ids, @attempts, @workers) AS t(id, attempt, worker)
             WHERE j.id = t.id AND j.attempts = t.attempt AND j.state = 'running' AND j.locked_by = t.worker
            RETURNING j.id
            """,
            new { ids = jobs.Select(j => j.Id).ToArray(), attempts = jobs.Select(j => j.Attempt).ToArray(), workers = jobs.Select(j => j.WorkerId).ToArray() },
            cancellationToken: ct))).ToHashSet();
        JobMetrics.Completed.Add(deleted.Count);
        return deleted;
    }

    /// <summary>
    /// Records a failed attempt: back to the queue after <paramref name="retryAfter"/> (or exponential backoff with
    /// jitter) while attempts remain, otherwise — or when <paramref name="permanent"/> — dead with the error kept.
    /// </summary>
    public async Task<FailOutcome> FailAsync(ClaimedJob job, string error, CancellationToken ct, TimeSpan? retryAfter = null, bool permanent = false)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        var state = await connection.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            """
            UPDATE jobs
               SET state = CASE WHEN @permanent OR attempts >= max_attempts THEN 'dead' ELSE 'available' END,
                   run_at = CASE WHEN @permanent OR attempts >= max_attempts THEN run_at ELSE now() + @delay END,
                   finished_at = CASE WHEN @permanent OR attempts >= max_attempts THEN now() END,
                   last_error = @error, locked_by = NULL, lease_expires_at = NULL
             WHERE id = @Id AND attempts = @Attempt AND state = 'running' AND locked_by = @WorkerId
            RETURNING state, CASE WHEN concurrency_key IS NOT NULL THEN pg_notify('plugboard_jobs', '') IS NOT NULL END AS woke_successor
            """,
            new { job.Id, job.Attempt, job.WorkerId, permanent, delay = retryAfter ?? Backoff(job.Attempt), error = Truncate(error) },
            cancellationToken: ct));
        switch (state)
        {
            case "dead":
                JobMetrics.Failed.Add(1);
                JobMetrics.Dead.Add(1);
                return FailOutcome.Dead;
            case "available":
                JobMetrics.Failed.Add(1);
                return FailOutcome.Retrying;
            default:
                return FailOutcome.LeaseLost;
        }
    }

    /// <summary>Exponential backoff with ±25 % jitter: about 1 s, 2 s, 4 s, … capped at one hour.</summary>
    public static TimeSpan Backoff(int attempt)
    {
        var seconds = Math.Min(3600, Math.Pow(2, Math.Clamp(attempt - 1, 0, 12)));
        return TimeSpan.FromSeconds(seconds * (0.75 + (Random.Shared.NextDouble() * 0.5)));
    }

    /// <summary>Cancels a queued or running job (a running holder loses its lease at its next renewal). False when already finished.</summary>
    public async Task<bool> CancelAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition(
            """
            UPDATE jobs SET state = 'cancelled', locked_by = NULL, lease_expires_at = NULL, finished_at = now()
             WHERE id = @id AND state IN ('available', 'running')
            """, new { id }, cancellationToken: ct)) == 1;
    }

    // Operators ----------------------------------------------------------------------------------------------

    public async Task<JobStats> StatsAsync(CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        var kinds = (await connection.QueryAsync<JobKindStats>(new CommandDefinition(
            """
            SELECT kind,
                   count(*) FILTER (WHERE state = 'available' AND attempts = 0 AND run_at <= now()) AS queued,
                   count(*) FILTER (WHERE state = 'available' AND attempts = 0 AND run_at > now()) AS scheduled,
                   count(*) FILTER (WHERE state = 'running') AS running,
                   count(*) FILTER (WHERE state = 'available' AND attempts > 0) AS retrying,
                   count(*) FILTER (WHERE state = 'dead') AS dead,
                   count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                   extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now()))::float8 AS oldestqueuedseconds
              FROM jobs GROUP BY kind ORDER BY kind
            """, cancellationToken: ct))).AsList();
        return new JobStats(kinds.Sum(k => k.Queued), kinds.Sum(k => k.Scheduled), kinds.Sum(k => k.Running), kinds.Sum(k => k.Retrying),
            kinds.Sum(k => k.Dead), kinds.Sum(k => k.Cancelled), kinds.Max(k => k.OldestQueuedSeconds), kinds);
    }

    /// <summary>Dead jobs, newest first, after the given id (keyset pagination); fetch limit + 1 to know if more follow.</summary>
    public async Task<IReadOnlyList<DeadJob>> ListDeadAsync(Guid? after, int limit, CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<DeadJob>(new CommandDefinition(
            """
            SELECT id, kind, workspace_id AS workspaceid, concurrency_key AS concurrencykey, attempts, max_attempts AS maxattempts,
                   last_error AS lasterror, created_at AS createdat, finished_at AS finishedat
              FROM jobs WHERE state = 'dead' AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @limit
            """, new { after, limit }, cancellationToken: ct))).AsList();
    }

    /// <summary>Puts a dead job back in the queue with its attempts reset (its last error is kept until it runs again).</summary>
    public Task<OperatorOutcome> RetryDeadAsync(Guid id, CancellationToken ct) => OperateAsync(id, ["dead"],
        $"UPDATE jobs SET state = 'available', attempts = 0, run_at = now(), finished_at = NULL WHERE id = @id; SELECT pg_notify('{Channel}', '')", ct);

    /// <summary>Deletes a dead (or cancelled) job for good.</summary>
    public Task<OperatorOutcome> DiscardAsync(Guid id, CancellationToken ct) => OperateAsync(id, ["dead", "cancelled"], "DELETE FROM jobs WHERE id = @id", ct);

    private async Task<OperatorOutcome> OperateAsync(Guid id, string[] states, string sql, CancellationToken ct)
    {
        await using var connection = await _source.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, ct);
        var state = await connection.QuerySingleOrDefaultAsync<string?>(new CommandDefinition(
            "SELECT state FROM jobs WHERE id = @id FOR UPDATE", new { id }, transaction, cancellationToken: ct));
        if (state is null)
        {
            return OperatorOutcome.NotFound;
        }
        if (!states.Contains(state))
        {
            return OperatorOutcome.WrongState;
        }
        await connection.ExecuteAsync(new CommandDefinition(sql, new { id }, transaction, cancellationToken: ct));
        await transaction.CommitAsync(ct);
        return OperatorOutcome.Done;
    }

    internal NpgsqlConnection CreateListenConnection() => Db.CreateSessionConnection("plugboard-jobs-listener");

    /// <summary>Closes idle pooled connections (their backends then report their statistics at once).</summary>
    internal void ClearPool() => _source.Clear();

    internal static string Truncate(string error) => error.Length <= MaxErrorLength ? error : error[..MaxErrorLength];

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}
