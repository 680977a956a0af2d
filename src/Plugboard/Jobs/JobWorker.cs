using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;

namespace Plugboard.Jobs;

/// <summary>
/// Runs jobs in up to <see cref="JobWorkerOptions.Concurrency"/> slots. A dedicated LISTEN connection wakes the
/// claim loop when jobs are committed; a slow poll covers scheduled jobs, retries and missed notifications.
/// Claims and completions are batched; leases of in-flight jobs are renewed on a timer. On shutdown it stops
/// claiming, waits for in-flight jobs up to the shutdown timeout and leaves the rest to lease expiry.
/// </summary>
public sealed partial class JobWorker : BackgroundService
{
    private readonly JobQueue _queue;
    private readonly Dictionary<string, IJobHandler> _handlers;
    private readonly JobWorkerOptions _options;
    private readonly ILogger<JobWorker> _logger;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Channel<bool> _slotFreed = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Channel<ClaimedJob> _completions = Channel.CreateUnbounded<ClaimedJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<Guid, InFlight> _inFlight = new();
    private readonly CancellationTokenSource _hardStop = new();
    private readonly SemaphoreSlim _slots;
    private volatile bool _stopping;
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly JobCancellations _cancellations;

    public JobWorker(JobQueue queue, IEnumerable<IJobHandler> handlers, JobWorkerOptions options, ILogger<JobWorker> logger, JobCancellations? cancellations = null)
    {
        _cancellations = cancellations ?? new JobCancellations();
        _queue = queue;
        _handlers = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
        _options = options;
        _slots = new SemaphoreSlim(_options.Concurrency, _options.Concurrency);
        _logger = logger;
        WorkerId = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
    }

    public string WorkerId { get; }

    /// <summary>Completes once the LISTEN connection is up (tests wait for it before measuring wake-up latency).</summary>
    public Task Listening => _listening.Task;

    private sealed record InFlight(ClaimedJob Job, CancellationTokenSource Cancel)
    {
        public Task Run { get; set; } = Task.CompletedTask;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_handlers.Count == 0)
        {
            LogNoHandlers(_logger);
            _listening.TrySetResult();
            return;
        }
        var kinds = _handlers.Keys.ToArray();
        using var background = new CancellationTokenSource();
        var listener = Task.Run(() => ListenAsync(stoppingToken), CancellationToken.None);
        _kinds = kinds;
        await BeatAsync(stoppingToken);
        var renewer = Task.Run(() => RenewLoopAsync(background.Token), CancellationToken.None);
        var completer = Task.Run(CompleteLoopAsync, CancellationToken.None);
        LogStarted(_logger, WorkerId, _options.Concurrency, string.Join(", ", kinds));
        try
        {
            await ClaimLoopAsync(kinds, stoppingToken);
        }
        finally
        {
            _stopping = true; // prefetched jobs that have not started go back to the queue instead of starting now
            await DrainAsync();
            _completions.Writer.TryComplete();
            await completer;
            await background.CancelAsync();
            await renewer;
            await listener;
            try
            {
                await _queue.RemoveHeartbeatAsync(WorkerId, CancellationToken.None);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                LogBeatFailed(_logger, e); // its row ages out of the live set
            }
            LogStopped(_logger, WorkerId);
        }
    }

    private async Task ClaimLoopAsync(string[] kinds, CancellationToken stop)
    {
        var pending = true; // due work may be waiting that this worker has not claimed yet
        var failures = 0;
        var threshold = Math.Max(1, _options.Concurrency / 2);
        var capacity = _options.Concurrency + _options.Prefetch;
        while (!stop.IsCancellationRequested)
        {
            if (!pending)
            {
                await WaitAsync(_wake.Reader, _options.PollInterval, stop);
                pending = true;
                continue;
            }
            var free = capacity - _inFlight.Count;
            if (free <= 0)
            {
                await WaitAsync(_slotFreed.Reader, Timeout.InfiniteTimeSpan, stop);
                continue;
            }
            if (free < threshold && !_inFlight.IsEmpty)
            {
                // Saturated with a backlog: give a few more slots a moment to free so the claim is a batch.
                var batchClock = Stopwatch.StartNew();
                while (free < threshold && batchClock.Elapsed < _options.BatchWait && !stop.IsCancellationRequested)
                {
                    await WaitAsync(_slotFreed.Reader, _options.BatchWait - batchClock.Elapsed, stop);
                    free = capacity - _inFlight.Count;
                }
            }
            while (_wake.Reader.TryRead(out _))
            {
            }
            IReadOnlyList<ClaimedJob> jobs;
            try
            {
                // Not cancellable: a claim that reached the server must be dispatched, not lost until its lease expires.
                jobs = await _queue.ClaimAsync(WorkerId, free, _options.Lease, CancellationToken.None, kinds);
                failures = 0;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                failures++;
                LogClaimFailed(_logger, e);
                await DelayAsync(TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 7)))), stop);
                continue;
            }
            foreach (var job in jobs)
            {
                Dispatch(job);
            }
            pending = jobs.Count == free;
        }
    }

    private void Dispatch(ClaimedJob job)
    {
        var entry = new InFlight(job, CancellationTokenSource.CreateLinkedTokenSource(_hardStop.Token));
        _inFlight[job.Id] = entry;
        JobMetrics.AddInFlight(1);
        entry.Run = Task.Run(() => RunAsync(entry), CancellationToken.None);
    }

    private async Task RunAsync(InFlight entry)
    {
        var job = entry.Job;
        var context = new JobContext(_queue, job);
        var slot = false;
        try
        {
            await _slots.WaitAsync(entry.Cancel.Token);
            slot = true;
            if (_stopping)
            {
                // Prefetched but never started: hand it straight back (this counts as an attempt).
                await FailAsync(job, new OperationCanceledException("The worker stopped before starting this job."), TimeSpan.Zero, permanent: false);
                return;
            }
            await _handlers[job.Kind].HandleAsync(job, context, entry.Cancel.Token);
            if (!context.CompletionAttempted)
            {
                _completions.Writer.TryWrite(job);
            }
        }
        catch (OperationCanceledException) when (entry.Cancel.IsCancellationRequested)
        {
            LogAbandoned(_logger, job.Id, job.Kind);
        }
        catch (PermanentJobFailure e)
        {
            await FailAsync(job, e, null, permanent: true);
        }
        catch (RetryJobLater e)
        {
            await FailAsync(job, e, e.After, permanent: false);
        }
        catch (Exception e)
        {
            await FailAsync(job, e, null, permanent: false);
        }
        finally
        {
            if (slot)
            {
                _slots.Release();
            }
            _inFlight.TryRemove(job.Id, out _);
            entry.Cancel.Dispose();
            JobMetrics.AddInFlight(-1);
            _slotFreed.Writer.TryWrite(true);
        }
    }

    private async Task FailAsync(ClaimedJob job, Exception error, TimeSpan? retryAfter, bool permanent)
    {
        try
        {
            var outcome = await _queue.FailAsync(job, $"{error.GetType().Name}: {error.Message}", CancellationToken.None, retryAfter, permanent);
            LogFailed(_logger, job.Id, job.Kind, job.Attempt, outcome, error);
        }
        catch (Exception e)
        {
            // The lease expires and the job is claimed again.
            LogFailFailed(_logger, job.Id, e);
        }
    }

    /// <summary>Deletes finished jobs in batches: whatever accumulated while the previous delete ran.</summary>
    private async Task CompleteLoopAsync()
    {
        var batch = new List<ClaimedJob>();
        while (await _completions.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < 2000 && _completions.Reader.TryRead(out var job))
            {
                batch.Add(job);
            }
            try
            {
                var deleted = await _queue.CompleteManyAsync(batch, CancellationToken.None);
                if (deleted.Count < batch.Count)
                {
                    LogCompleteLost(_logger, batch.Count - deleted.Count);
                }
            }
            catch (Exception e)
            {
                // Their leases expire and they run again: handlers without transactional completion are at least once.
                LogCompleteFailed(_logger, batch.Count, e);
            }
            batch.Clear();
        }
    }

    private async Task RenewLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_options.RenewInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                await BeatAsync(stop);
                var entries = _inFlight.Values.ToList();
                if (entries.Count == 0)
                {
                    continue;
                }
                try
                {
                    var held = await _queue.RenewAsync(WorkerId, entries.Select(e => e.Job).ToList(), _options.Lease, stop);
                    foreach (var lost in entries.Where(e => !held.Contains(e.Job.Id)))
                    {
                        LogLeaseLost(_logger, lost.Job.Id, lost.Job.Kind);
                        try
                        {
                            await lost.Cancel.CancelAsync();
                        }
                        catch (ObjectDisposedException)
                        {
                            // It finished meanwhile.
                        }
                    }
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException)
                {
                    LogRenewFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private string[] _kinds = [];

    /// <summary>The heartbeat operators and /readyz read: best effort, a missed beat only ages the row.</summary>
    private async Task BeatAsync(CancellationToken stop)
    {
        try
        {
            await _queue.BeatAsync(WorkerId, _kinds, _options.Concurrency, _inFlight.Count, stop);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            LogBeatFailed(_logger, e);
        }
    }

    private async Task ListenAsync(CancellationToken stop)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await using var connection = _queue.CreateListenConnection();
                connection.Notification += (_, e) =>
                {
                    if (e.Channel == JobQueue.CancelChannel)
                    {
                        _cancellations.Signal(e.Payload);
                    }
                    else
                    {
                        _wake.Writer.TryWrite(true);
                    }
                };
                await connection.OpenAsync(stop);
                await using (var listen = new NpgsqlCommand($"LISTEN {JobQueue.Channel}; LISTEN {JobQueue.CancelChannel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stop);
                }
                // Jobs committed while this worker was not listening are claimed now.
                _wake.Writer.TryWrite(true);
                _listening.TrySetResult();
                delay = TimeSpan.FromSeconds(1);
                while (!stop.IsCancellationRequested)
                {
                    await connection.WaitAsync(stop);
                }
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogListenFailed(_logger, delay.TotalSeconds, e);
                await DelayAsync(delay, stop);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    /// <summary>Waits for the in-flight jobs up to the shutdown timeout, then cancels them and leaves them to lease expiry.</summary>
    private async Task DrainAsync()
    {
        var running = _inFlight.Values.Select(e => e.Run).ToArray();
        if (running.Length == 0)
        {
            return;
        }
        LogDraining(_logger, running.Length, _options.ShutdownTimeout.TotalSeconds);
        try
        {
            await Task.WhenAll(running).WaitAsync(_options.ShutdownTimeout);
        }
        catch (TimeoutException)
        {
            await _hardStop.CancelAsync();
            try
            {
                await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(2));
            }
            catch (TimeoutException)
            {
                LogAbandonedOnShutdown(_logger, _inFlight.Count);
            }
        }
    }

    private static async Task WaitAsync(ChannelReader<bool> signal, TimeSpan timeout, CancellationToken stop)
    {
        if (signal.TryRead(out _))
        {
            return;
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            cts.CancelAfter(timeout);
        }
        try
        {
            await signal.WaitToReadAsync(cts.Token);
            signal.TryRead(out _);
        }
        catch (OperationCanceledException)
        {
            // Timed out, or stopping: the caller's loop decides.
        }
    }

    private static async Task DelayAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public override void Dispose()
    {
        _hardStop.Dispose();
        _slots.Dispose();
        base.Dispose();
    }

    [LoggerMessage(LogLevel.Information, "Job worker {WorkerId} started with {Concurrency} slots for kinds: {Kinds}")]
    private static partial void LogStarted(ILogger logger, string workerId, int concurrency, string kinds);

    [LoggerMessage(LogLevel.Information, "Job worker {WorkerId} stopped")]
    private static partial void LogStopped(ILogger logger, string workerId);

    [LoggerMessage(LogLevel.Information, "No job handlers are registered; the job worker stays idle")]
    private static partial void LogNoHandlers(ILogger logger);

    [LoggerMessage(LogLevel.Warning, "Claiming jobs failed; retrying")]
    private static partial void LogClaimFailed(ILogger logger, Exception e);

    [LoggerMessage(LogLevel.Warning, "Job {JobId} ({Kind}) attempt {Attempt} failed: {Outcome}")]
    private static partial void LogFailed(ILogger logger, Guid jobId, string kind, int attempt, FailOutcome outcome, Exception e);

    [LoggerMessage(LogLevel.Error, "Recording the failure of job {JobId} failed; its lease will expire")]
    private static partial void LogFailFailed(ILogger logger, Guid jobId, Exception e);

    [LoggerMessage(LogLevel.Warning, "{Count} finished jobs were no longer held by this worker when completed")]
    private static partial void LogCompleteLost(ILogger logger, int count);

    [LoggerMessage(LogLevel.Error, "Completing {Count} jobs failed; they run again when their leases expire")]
    private static partial void LogCompleteFailed(ILogger logger, int count, Exception e);

    [LoggerMessage(LogLevel.Warning, "Lost the lease of job {JobId} ({Kind}); cancelling its handler")]
    private static partial void LogLeaseLost(ILogger logger, Guid jobId, string kind);

    [LoggerMessage(LogLevel.Warning, "Renewing job leases failed")]
    private static partial void LogRenewFailed(ILogger logger, Exception e);

    [LoggerMessage(LogLevel.Information, "Job {JobId} ({Kind}) was cancelled (lease lost or shutdown)")]
    private static partial void LogAbandoned(ILogger logger, Guid jobId, string kind);

    [LoggerMessage(LogLevel.Warning, "The job LISTEN connection failed; reconnecting in {Seconds} s")]
    private static partial void LogListenFailed(ILogger logger, double seconds, Exception e);

    [LoggerMessage(LogLevel.Information, "Waiting up to {Seconds} s for {Count} running jobs")]
    private static partial void LogDraining(ILogger logger, int count, double seconds);

    [LoggerMessage(LogLevel.Warning, "{Count} jobs were still running at shutdown; their leases will expire")]
    private static partial void LogAbandonedOnShutdown(ILogger logger, int count);

    [LoggerMessage(LogLevel.Warning, "Could not record this worker's heartbeat")]
    private static partial void LogBeatFailed(ILogger logger, Exception e);
}
