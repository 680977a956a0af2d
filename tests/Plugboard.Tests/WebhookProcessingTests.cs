using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Testing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Stored events processed through the job queue into what the manifest maps them to: syncs, executions, nothing; replays.</summary>
[Collection(ServerCollection.Name)]
public sealed class WebhookProcessingTests(PlugboardServer server)
{
    private readonly HttpClient _anonymous = server.Client(null);

    private sealed class Source : IAsyncDisposable
    {
        public ConcurrentQueue<string> Numbers { get; } = new();
        public volatile TaskCompletionSource? Gate;
        public volatile int Count = 2;
        public Stub Stub { get; private set; } = null!;

        public static async Task<Source> StartAsync()
        {
            var source = new Source();
            source.Stub = await Stub.StartAsync(app => app.MapGet("/issues", async (HttpRequest request) =>
            {
                // What the source holds when the request arrives is what it answers, however long the gate holds it.
                var items = Enumerable.Range(1, source.Count).Select(i => new { id = i, title = $"Issue {i}", body = $"Webhook body {i}" }).ToList();
                source.Numbers.Enqueue(request.Query["n"].ToString());
                if (source.Gate is { } gate)
                {
                    await gate.Task;
                }
                return Results.Json(new { items });
            }));
            return source;
        }

        public ValueTask DisposeAsync() => Stub.DisposeAsync();
    }

    private static Dictionary<string, object?> Manifest(string baseUrl) => new()
    {
        ["version"] = 1,
        ["base_url"] = baseUrl,
        ["inputs"] = new { number = new { type = "integer" } },
        ["steps"] = new[] { new { id = "list", request = new { method = "GET", path = "/issues", query = new { n = "{{ inputs.number }}" } }, extract = new { items = "$.items[*]" } } },
        ["streams"] = new[]
        {
            new { name = "issues", records = "steps.list.items", primary_key = "{{ record.id }}", document = new { title = "{{ record.title }}", content = "{{ record.body }}" } },
        },
        ["webhooks"] = new Dictionary<string, object?>
        {
            ["verify"] = "standard",
            ["events"] = new Dictionary<string, object?>
            {
                ["issue.changed"] = new { action = "sync" },
                ["issue.run"] = new { action = "execution", inputs = new { number = "{{ event.payload.number }}" } },
                ["issue.bad"] = new { action = "execution", inputs = new { number = "{{ event.payload.title }}" } },
                ["noise"] = new { action = "ignore" },
            },
        },
    };

    private async Task<string> SendAsync(Hook hook, string body)
    {
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, body))).AssertStatusAsync(200);
        var type = JsonDocument.Parse(body).RootElement.GetProperty("type").GetString();
        return (await Webhooks.EventsAsync(hook, $"&type={type}"))[0].GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> WaitAsync(Actor actor, string url, params string[] done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var item = await (await actor.Http.GetAsync(url)).AssertStatusAsync(200);
            if (done.Contains(item.GetProperty("status").GetString()))
            {
                return item;
            }
            Assert.True(DateTime.UtcNow < deadline, $"still {item.GetProperty("status")}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task An_event_mapped_to_sync_starts_a_webhook_sync_and_one_mapped_to_execution_runs_with_inputs_from_the_event()
    {
        await using var source = await Source.StartAsync();
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Manifest(source.Stub.Url));

        var synced = await Webhooks.ProcessedAsync(hook, await SendAsync(hook, """{"type":"issue.changed","id":1}"""));
        Assert.Equal("Started a sync.", synced.GetProperty("note").GetString());
        var syncId = synced.GetProperty("result").GetProperty("sync_id").GetString();
        var log = await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/syncs/{syncId}", "completed", "failed");
        Assert.Equal("completed", log.GetProperty("status").GetString());
        Assert.Equal("webhook", log.GetProperty("trigger").GetString());
        Assert.Equal(2, log.GetProperty("records_created").GetInt32());

        var ran = await Webhooks.ProcessedAsync(hook, await SendAsync(hook, """{"type":"issue.run","number":42}"""));
        var executionId = ran.GetProperty("result").GetProperty("execution_id").GetString();
        var execution = await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/executions/{executionId}", "succeeded", "failed");
        Assert.Equal("succeeded", execution.GetProperty("status").GetString());
        Assert.Equal("webhook", execution.GetProperty("trigger").GetString());
        Assert.Equal(42, execution.GetProperty("inputs").GetProperty("number").GetInt32()); // a single expression keeps its JSON type
        Assert.Contains("42", source.Numbers);

        // Inputs the manifest's declared types refuse: the event keeps the reason and stays unprocessed, for a replay.
        var bad = await Webhooks.ProcessedAsync(hook, await SendAsync(hook, """{"type":"issue.bad","title":"not a number"}"""));
        Assert.False(bad.GetProperty("processed").GetBoolean());
        Assert.Contains("not valid", bad.GetProperty("error").GetString(), StringComparison.Ordinal);

        var ignored = await Webhooks.ProcessedAsync(hook, await SendAsync(hook, """{"type":"noise"}"""));
        Assert.StartsWith("Ignored", ignored.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, ignored.GetProperty("result").ValueKind);
        var unprocessed = await Webhooks.EventsAsync(hook, "&processed=false");
        Assert.Equal("issue.bad", Assert.Single(unprocessed).GetProperty("event_type").GetString());
    }

    [Fact]
    public async Task An_event_arriving_while_an_older_sync_runs_waits_for_it_then_starts_a_sync_of_its_own()
    {
        await using var source = await Source.StartAsync();
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Manifest(source.Stub.Url));
        source.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await Webhooks.ProcessedAsync(hook, await SendAsync(hook, """{"type":"issue.changed","n":1}"""));
        var firstSync = first.GetProperty("result").GetProperty("sync_id").GetString();
        await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/syncs/{firstSync}", "running");
        for (var deadline = DateTime.UtcNow.AddSeconds(10); source.Numbers.IsEmpty;)
        {
            Assert.True(DateTime.UtcNow < deadline, "the sync never reached the source");
            await Task.Delay(20);
        }

        // The running sync started before this event and has read the source already: the event's record is new.
        source.Count = 3;
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"issue.changed","n":2}"""))).AssertStatusAsync(200);
        var second = (await Webhooks.EventsAsync(hook)).First(e => !e.GetProperty("processed").GetBoolean()).GetProperty("id").GetString()!;
        for (var deadline = DateTime.UtcNow.AddSeconds(10); true; await Task.Delay(50))
        {
            var waiting = await (await team.Viewer.Http.GetAsync($"{hook.EventsUrl}/{second}")).AssertStatusAsync(200);
            if (waiting.GetProperty("note").GetString()?.StartsWith("Waiting for sync", StringComparison.Ordinal) == true)
            {
                Assert.False(waiting.GetProperty("processed").GetBoolean());
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, waiting.ToString());
        }
        source.Gate.SetResult();
        await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/syncs/{firstSync}", "completed");
        var served = await Webhooks.ProcessedAsync(hook, second);
        var secondSync = served.GetProperty("result").GetProperty("sync_id").GetString();
        Assert.NotEqual(firstSync, secondSync);
        var log = await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/syncs/{secondSync}", "completed");
        Assert.Equal(1, log.GetProperty("records_created").GetInt32()); // the record the event announced
    }

    [Fact]
    public async Task Admins_replay_one_event_or_a_range_members_cannot_and_other_workspaces_see_nothing()
    {
        await using var source = await Source.StartAsync();
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Manifest(source.Stub.Url));
        var ids = new List<string>();
        foreach (var n in new[] { 1, 2, 3 })
        {
            ids.Add(await SendAsync(hook, $$"""{"type":"issue.run","number":{{n}}}"""));
            await Webhooks.ProcessedAsync(hook, ids[^1]);
        }
        var unmapped = await SendAsync(hook, """{"type":"something.else"}""");
        Assert.Contains("No mapping", (await Webhooks.ProcessedAsync(hook, unmapped)).GetProperty("note").GetString(), StringComparison.Ordinal);

        await (await team.Member.Http.PostAsync($"{hook.EventsUrl}/{ids[0]}/replay", null)).AssertProblemAsync(403);
        var replay = await (await team.Admin.Http.PostAsync($"{hook.EventsUrl}/{ids[0]}/replay", null)).AssertStatusAsync(202);
        Assert.Equal("Replayed.", replay.GetProperty("note").GetString());
        var again = await Webhooks.ProcessedAsync(hook, ids[0]);
        Assert.True(again.GetProperty("processed").GetBoolean());
        Assert.Equal(1, again.GetProperty("attempts").GetInt32()); // counted afresh from the replay
        // The event is processed once its execution is queued; the execution's request reaches the source a moment later.
        for (var deadline = DateTime.UtcNow.AddSeconds(20); source.Numbers.Count < 4;)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{source.Numbers.Count} requests");
            await Task.Delay(50);
        }
        Assert.Equal(4, source.Numbers.Count);

        var range = await (await team.Admin.Http.PostAsJsonAsync($"{hook.EventsUrl}/replay", new { event_type = "issue.run" })).AssertStatusAsync(202);
        Assert.Equal(3, range.GetProperty("replayed").GetInt32());
        foreach (var id in ids)
        {
            await Webhooks.ProcessedAsync(hook, id);
        }
        for (var deadline = DateTime.UtcNow.AddSeconds(20); source.Numbers.Count < 7;)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{source.Numbers.Count} requests");
            await Task.Delay(50);
        }
        await (await team.Admin.Http.PostAsJsonAsync($"{hook.EventsUrl}/replay", new { limit = 5000 })).AssertProblemAsync(422);
        var audit = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?action=connector.webhook_replayed")).AssertStatusAsync(200);
        Assert.Equal(2, audit.GetProperty("items").GetArrayLength()); // the single replay and the range

        var other = await server.TeamAsync();
        await (await other.Owner.Http.GetAsync($"/v1/workspaces/{other.Id}/connectors/{hook.ConnectorId}/webhook/events")).AssertProblemAsync(404);
        await (await other.Owner.Http.PostAsync($"/v1/workspaces/{other.Id}/connectors/{hook.ConnectorId}/webhook/events/{ids[0]}/replay", null)).AssertProblemAsync(404);
        await (await team.Viewer.Http.GetAsync($"{hook.EventsUrl}?verification=bogus")).AssertProblemAsync(400);
        Assert.Equal(4, (await Webhooks.EventsAsync(hook, "&verification=standard")).Count);
    }

    [Fact]
    public async Task A_Graph_missed_notification_starts_a_sync_and_a_reauthorization_request_is_stored_with_a_note()
    {
        await using var source = await Source.StartAsync();
        var team = await server.TeamAsync();
        var manifest = Manifest(source.Stub.Url);
        manifest["webhooks"] = new { verify = "graph", events = new Dictionary<string, object> { ["created"] = new { action = "sync" } } };
        var hook = await Webhooks.CreateAsync(team, manifest);
        string Lifecycle(string kind) => JsonSerializer.Serialize(new { value = new[] { new { subscriptionId = "s-1", clientState = hook.Secret, lifecycleEvent = kind } } });
        var before = DateTime.UtcNow.AddSeconds(-1);
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, Lifecycle("missed")))).AssertStatusAsync(202);
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, Lifecycle("reauthorizationRequired")))).AssertStatusAsync(202);

        var events = await Webhooks.EventsAsync(hook, $"&since={Uri.EscapeDataString(before.ToString("O"))}");
        Assert.Equal(2, events.Count);
        var missed = await Webhooks.ProcessedAsync(hook, events.Single(e => e.GetProperty("event_type").GetString() == "missed").GetProperty("id").GetString()!);
        var syncId = missed.GetProperty("result").GetProperty("sync_id").GetString();
        Assert.Equal("webhook", (await WaitAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/syncs/{syncId}", "completed")).GetProperty("trigger").GetString());
        var reauthorize = await Webhooks.ProcessedAsync(hook, events.Single(e => e.GetProperty("event_type").GetString() == "reauthorizationRequired").GetProperty("id").GetString()!);
        Assert.Contains("No mapping for event type 'reauthorizationRequired'", reauthorize.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Empty(await Webhooks.EventsAsync(hook, $"&until={Uri.EscapeDataString(before.ToString("O"))}"));
        Assert.Equal(2, (await Webhooks.EventsAsync(hook, "&verification=graph")).Count);
    }
}
