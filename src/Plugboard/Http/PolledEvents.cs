using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Plugboard.Data;

namespace Plugboard.Http;

/// <summary>What one poll of a watched resource found: <paramref name="Key"/> changes when it is worth an event.</summary>
public sealed record PolledState(string Key, object Data, bool Finished);

/// <summary>
/// Server-sent events over a row that background work updates: <c>progress</c> with its state whenever its key
/// changes, <c>ping</c> every 15 s otherwise, then <c>end</c> with the finished state. Each poll (every 250 ms) reads
/// in a fresh short transaction, so an open stream holds no connection; a resource that disappears ends the stream.
/// </summary>
public static class PolledEvents
{
    public static async Task<IResult> StreamAsync(RequestDb db, Db databases, HttpContext http,
        Func<WorkspaceSession, CancellationToken, Task<PolledState?>> poll, CancellationToken ct)
    {
        var context = db.Context;
        await db.CommitAsync(ct);
        await db.ReleaseAsync();
        http.Response.Headers["X-Accel-Buffering"] = "no";
        return TypedResults.ServerSentEvents(EventsAsync(databases, context, poll, ct));
    }

    private static async IAsyncEnumerable<SseItem<string>> EventsAsync(Db databases, WorkspaceContext context,
        Func<WorkspaceSession, CancellationToken, Task<PolledState?>> poll, [EnumeratorCancellation] CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddHours(6);
        string? last = null;
        var lastWrite = DateTime.MinValue;
        while (!ct.IsCancellationRequested && DateTime.UtcNow < deadline)
        {
            PolledState? state;
            await using (var session = await WorkspaceSession.BeginAsync(databases, context, ct))
            {
                state = await poll(session, ct);
                await session.CommitAsync(ct);
            }
            if (state is null)
            {
                yield break;
            }
            if (state.Finished)
            {
                yield return new SseItem<string>(JsonSerializer.Serialize(state.Data, ApiJson.Options), "end");
                yield break;
            }
            if (state.Key != last)
            {
                yield return new SseItem<string>(JsonSerializer.Serialize(state.Data, ApiJson.Options), "progress");
                last = state.Key;
                lastWrite = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - lastWrite > TimeSpan.FromSeconds(15))
            {
                yield return new SseItem<string>("{}", "ping");
                lastWrite = DateTime.UtcNow;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
        }
    }
}
