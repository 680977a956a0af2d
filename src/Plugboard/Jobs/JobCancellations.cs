using System.Collections.Concurrent;

namespace Plugboard.Jobs;

/// <summary>
/// Cancels running jobs by key when a cancel is requested anywhere: a trigger NOTIFYs <see cref="JobQueue.CancelChannel"/>
/// with the key, every worker's LISTEN connection hears it, and the process running that job cancels its token at
/// once. No job polls the database for its own cancellation.
/// </summary>
public sealed class JobCancellations
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _running = new(StringComparer.Ordinal);

    /// <summary>Cancels <paramref name="cancel"/> when <paramref name="key"/> is signalled, until the registration is disposed.</summary>
    public IDisposable Register(string key, CancellationTokenSource cancel)
    {
        _running[key] = cancel;
        return new Registration(this, key, cancel);
    }

    public void Signal(string key)
    {
        if (_running.TryGetValue(key, out var cancel))
        {
            try
            {
                cancel.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // It finished meanwhile.
            }
        }
    }

    private sealed class Registration(JobCancellations owner, string key, CancellationTokenSource cancel) : IDisposable
    {
        public void Dispose() => owner._running.TryRemove(new KeyValuePair<string, CancellationTokenSource>(key, cancel));
    }
}
