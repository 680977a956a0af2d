using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Plugboard.Data;
using Plugboard.Features.Syncs;
using Plugboard.Testing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Syncs end to end: API or scheduler → sync job → engine → a paginated stub source → imported_documents.</summary>
[Collection(ServerCollection.Name)]
public sealed class SyncTests(PlugboardServer server)
{
    /// <summary>A source of records served in pages of two, which a test may change between syncs.</summary>
    private sealed class Source : IAsyncDisposable
    {
        public ConcurrentDictionary<int, (string Title, string Body, string UpdatedAt)> Records { get; } = new();
        public Stub Stub { get; private set; } = null!;
        public volatile bool Failing;
        public TaskCompletionSource? Gate;
        public TaskCompletionSource? LaterPagesGate;
        public volatile int FailFrom = int.MaxValue;

        public static async Task<Source> StartAsync(int count)
        {
            var source = new Source();
            for (var i = 1; i <= count; i++)
            {
                source.Records[i] = ($"Issue {i}", $"The body of issue {i}", $"2026-11-{10 + i:00}T08:00:00Z");
            }
            source.Stub = await Stub.StartAsync(app => app.MapGet("/issues", async (HttpRequest request) =>
            {
                if (source.Gate is { } gate)
                {
                    await gate.Task;
                }
                if (source.Failing)
                {
                    return Results.Json(new { error = "the source is down" }, statusCode: 400);
                }
                var after = int.TryParse(request.Query["after"], out var a) ? a : 0;
                if (after >= source.FailFrom)
                {
                    return Results.Json(new { error = "page unavailable" }, statusCode: 400);
                }
                if (after > 0 && source.LaterPagesGate is { } later)
                {
                    await later.Task;
                }
                var page = source.Records.OrderBy(r => r.Key).Where(r => r.Key > after).Take(2)
                    .Select(r => new { id = r.Key, title = r.Value.Title, body = r.Value.Body, updated_at = r.Value.UpdatedAt }).ToList();
                var more = page.Count > 0 && source.Records.Keys.Any(k => k > page[^1].id);
                return Results.Json(new { items = page, next = more ? page[^1].id.ToString(System.Globalization.CultureInfo.InvariantCulture) : null });
            }));
            return source;
        }

        public ValueTask DisposeAsync() => Stub.DisposeAsync();
    }

    private static object Manifest(string baseUrl, int? maxPages = null) => new Dictionary<string, object?>
    {
        ["version"] = 1,
        ["base_url"] = baseUrl,
        ["steps"] = new[]
        {
            new Dictionary<string, object?>
            {
                ["id"] = "list",
                ["request"] = new { method = "GET", path = "/issues", query = new { since = "{{ sync.cursor.issues }}" } },
                ["extract"] = new { items = "$.items[*]" },
                ["paginate"] = maxPages is null
                    ? new { type = "cursor", cursor_param = "after", cursor_path = "$.next" }
                    : new { type = "cursor", cursor_param = "after", cursor_path = "$.next", max_pages = maxPages },
            },
        },
        ["streams"] = new[]
        {
            new
            {
                name = "issues",
                records = "steps.list.items",
                primary_key = "{{ record.id }}",
                cursor = new { field = "{{ record.updated_at }}", lookback_seconds = 60 },
                document = new
                {
                    title = "{{ record.title }}",
                    url = "https://tracker.test/issues/{{ record.id }}",
                    content_type = "text/markdown",
                    content = "# {{ record.title }}\n\n{{ record.body }}",
                    metadata = new { number = "{{ record.id }}" },
                },
            },
        },
    };

    private static async Task<string> ConnectorAsync(TeamWorkspace team, object manifest, string? frequency = null)
    {
        var body = new Dictionary<string, object?> { ["name"] = "sync-" + Guid.NewGuid().ToString("N")[..8], ["manifest"] = manifest };
        if (frequency is not null)
        {
            body["sync_frequency"] = frequency;
        }
        return (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", body)).AssertStatusAsync(201)).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> SyncAsync(Actor actor, TeamWorkspace team, string connectorId, bool fullRefresh = false)
    {
        var response = await actor.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { full_refresh = fullRefresh });
        var started = await response.AssertStatusAsync(202);
        Assert.Equal("manual", started.GetProperty("trigger").GetString());
        return await WaitForEndAsync(actor, response.Headers.Location!.ToString());
    }

    private static async Task<JsonElement> WaitForEndAsync(Actor actor, string location)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var log = await (await actor.Http.GetAsync(location)).AssertStatusAsync(200);
            if (log.GetProperty("status").GetString() is "completed" or "failed" or "cancelled")
            {
                return log;
            }
            Assert.True(DateTime.UtcNow < deadline, $"sync still {log.GetProperty("status").GetString()}");
            await Task.Delay(50);
        }
    }

    private static void Counts(JsonElement log, int fetched, int created, int updated, int unchanged, int deleted)
    {
        Assert.True(log.GetProperty("status").GetString() == "completed", log.ToString());
        Assert.Equal((fetched, created, updated, unchanged, deleted), (log.GetProperty("records_fetched").GetInt32(), log.GetProperty("records_created").GetInt32(),
            log.GetProperty("records_updated").GetInt32(), log.GetProperty("records_unchanged").GetInt32(), log.GetProperty("records_deleted").GetInt32()));
    }

    /// <summary>Row versions once the pipeline is done with them (processing writes its status and chunk count).</summary>
    private async Task<string> RowVersionsAsync(string connectorId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (await server.OwnerScalarAsync<long>(
                   "SELECT count(*) FROM imported_documents d WHERE connector_id = @id AND (processing_status IN ('pending', 'processing') OR EXISTS (SELECT FROM jobs j WHERE j.kind = 'document' AND j.payload->>'documentId' = d.id::text))",
                   new { id = Guid.Parse(connectorId) }) > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "documents not processed");
            await Task.Delay(50);
        }
        return await VersionsAsync(connectorId);
    }

    private Task<string> VersionsAsync(string connectorId) => server.OwnerScalarAsync<string>(
        "SELECT string_agg(external_id || ':' || xmin::text, ',' ORDER BY external_id) FROM imported_documents WHERE connector_id = @id", new { id = Guid.Parse(connectorId) });

    [Fact]
    public async Task A_sync_imports_every_record_as_a_document_and_an_unchanged_resync_writes_nothing()
    {
        await using var source = await Source.StartAsync(5);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));

        var first = await SyncAsync(team.Member, team, connectorId);
        Counts(first, fetched: 5, created: 5, updated: 0, unchanged: 0, deleted: 0);
        Assert.Equal(3, first.GetProperty("pages").GetInt32());
        Assert.Equal("2026-11-15T08:00:00Z", first.GetProperty("cursor_after").GetProperty("issues").GetString());
        var documents = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents?connector_id={connectorId}&limit=50")).AssertStatusAsync(200);
        var items = documents.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(5, items.Count);
        var third = items.Single(d => d.GetProperty("external_id").GetString() == "3");
        Assert.Equal("sync", third.GetProperty("source").GetString());
        Assert.Equal("Issue 3", third.GetProperty("title").GetString());
        Assert.Equal("https://tracker.test/issues/3", third.GetProperty("external_url").GetString());
        Assert.Equal(3, third.GetProperty("source_metadata").GetProperty("number").GetInt32()); // one {{ expression }} keeps its JSON type
        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.NotEqual(JsonValueKind.Null, connector.GetProperty("last_sync_at").ValueKind);

        var versions = await RowVersionsAsync(connectorId);
        var jobs = await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE kind = 'document' AND payload->>'workspaceId' = @id", new { id = team.Id });
        var again = await SyncAsync(team.Member, team, connectorId);
        Counts(again, fetched: 5, created: 0, updated: 0, unchanged: 5, deleted: 0); // the stub ignores `since`: the same five come back
        var full = await SyncAsync(team.Member, team, connectorId, fullRefresh: true);
        Counts(full, fetched: 5, created: 0, updated: 0, unchanged: 5, deleted: 0);
        Assert.Equal(versions, await RowVersionsAsync(connectorId)); // unchanged records cost no row write
        Assert.True(await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE kind = 'document' AND payload->>'workspaceId' = @id", new { id = team.Id }) <= jobs);

        // The pipeline made them searchable in their workspace.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE connector_id = @id AND processing_status = 'completed'",
                   new { id = Guid.Parse(connectorId) }) < 5)
        {
            Assert.True(DateTime.UtcNow < deadline, "documents not processed");
            await Task.Delay(50);
        }
        var hits = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q=body%20issue%204")).AssertStatusAsync(200);
        Assert.Contains(hits.GetProperty("items").EnumerateArray(), h => h.GetProperty("document_id").GetString() ==
            items.Single(d => d.GetProperty("external_id").GetString() == "4").GetProperty("id").GetString());
    }

    [Fact]
    public async Task An_incremental_sync_asks_from_the_stored_cursor_and_a_change_updates_only_its_document()
    {
        await using var source = await Source.StartAsync(3);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        Counts(await SyncAsync(team.Member, team, connectorId), fetched: 3, created: 3, updated: 0, unchanged: 0, deleted: 0);
        var before = await RowVersionsAsync(connectorId);

        source.Records[2] = ("Issue 2", "Edited", "2026-11-20T08:00:00Z");
        source.Stub.Requests.Clear();
        var second = await SyncAsync(team.Member, team, connectorId);
        // The stub ignores `since`, so all three come back: one changed, two the same.
        Counts(second, fetched: 3, created: 0, updated: 1, unchanged: 2, deleted: 0);
        Assert.Equal("/issues?since=2026-11-13T07%3A59%3A00Z", source.Stub.Requests.First().PathAndQuery); // the cursor minus 60 s of look-back
        Assert.Equal("2026-11-13T08:00:00Z", second.GetProperty("cursor_before").GetProperty("issues").GetString());
        Assert.Equal("2026-11-20T08:00:00Z", second.GetProperty("cursor_after").GetProperty("issues").GetString());
        var after = (await RowVersionsAsync(connectorId)).Split(',');
        var old = before.Split(',');
        Assert.Equal(old[0], after[0]);
        Assert.NotEqual(old[1], after[1]);
        Assert.Equal(old[2], after[2]);
        Assert.Equal("# Issue 2\n\nEdited", await server.OwnerScalarAsync<string>(
            "SELECT content FROM imported_documents WHERE connector_id = @id AND external_id = '2'", new { id = Guid.Parse(connectorId) }));
    }

    [Fact]
    public async Task A_complete_full_refresh_deletes_what_is_gone_and_a_record_that_returns_is_restored()
    {
        await using var source = await Source.StartAsync(4);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        Counts(await SyncAsync(team.Member, team, connectorId, fullRefresh: true), fetched: 4, created: 4, updated: 0, unchanged: 0, deleted: 0);
        var removed = source.Records[3];
        source.Records.TryRemove(3, out _);
        Counts(await SyncAsync(team.Member, team, connectorId, fullRefresh: true), fetched: 3, created: 0, updated: 0, unchanged: 3, deleted: 1);
        Assert.True(await server.OwnerScalarAsync<bool>("SELECT is_deleted FROM imported_documents WHERE connector_id = @id AND external_id = '3'",
            new { id = Guid.Parse(connectorId) }));
        var listed = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents?connector_id={connectorId}")).AssertStatusAsync(200);
        Assert.Equal(3, listed.GetProperty("items").GetArrayLength());

        source.Records[3] = removed;
        Counts(await SyncAsync(team.Member, team, connectorId, fullRefresh: true), fetched: 4, created: 0, updated: 1, unchanged: 3, deleted: 0);
        Assert.False(await server.OwnerScalarAsync<bool>("SELECT is_deleted FROM imported_documents WHERE connector_id = @id AND external_id = '3'",
            new { id = Guid.Parse(connectorId) }));
    }

    [Fact]
    public async Task The_records_feed_returns_what_changed_since_a_cursor_in_change_order()
    {
        await using var source = await Source.StartAsync(3);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        var feed = $"/v1/workspaces/{team.Id}/connectors/{connectorId}/records";
        var empty = await (await team.Viewer.Http.GetAsync(feed)).AssertStatusAsync(200);
        Assert.Equal(0, empty.GetProperty("items").GetArrayLength());
        var start = empty.GetProperty("next_cursor").GetString();

        await SyncAsync(team.Member, team, connectorId, fullRefresh: true);
        var first = await (await team.Viewer.Http.GetAsync($"{feed}?cursor={start}&limit=2")).AssertStatusAsync(200);
        Assert.Equal(["1:added", "2:added"], first.GetProperty("items").EnumerateArray().Select(r => $"{r.GetProperty("external_id").GetString()}:{r.GetProperty("last_action").GetString()}"));
        Assert.True(first.GetProperty("has_more").GetBoolean());
        var rest = await (await team.Viewer.Http.GetAsync($"{feed}?cursor={first.GetProperty("next_cursor").GetString()}")).AssertStatusAsync(200);
        Assert.Equal(["3:added"], rest.GetProperty("items").EnumerateArray().Select(r => $"{r.GetProperty("external_id").GetString()}:{r.GetProperty("last_action").GetString()}"));
        Assert.False(rest.GetProperty("has_more").GetBoolean());
        var caughtUp = rest.GetProperty("next_cursor").GetString();
        var nothing = await (await team.Viewer.Http.GetAsync($"{feed}?cursor={caughtUp}")).AssertStatusAsync(200);
        Assert.Equal(0, nothing.GetProperty("items").GetArrayLength());
        Assert.Equal(caughtUp, nothing.GetProperty("next_cursor").GetString());

        // An unchanged sync adds nothing to the feed; a change and a deletion follow in the order they were written.
        await SyncAsync(team.Member, team, connectorId, fullRefresh: true);
        Assert.Equal(0, (await (await team.Viewer.Http.GetAsync($"{feed}?cursor={caughtUp}")).AssertStatusAsync(200)).GetProperty("items").GetArrayLength());
        source.Records[1] = ("Issue 1", "Changed", "2026-11-11T08:00:00Z");
        source.Records.TryRemove(3, out _);
        await SyncAsync(team.Member, team, connectorId, fullRefresh: true);
        var changes = await (await team.Viewer.Http.GetAsync($"{feed}?cursor={caughtUp}")).AssertStatusAsync(200);
        Assert.Equal(["1:updated", "3:deleted"], changes.GetProperty("items").EnumerateArray().Select(r => $"{r.GetProperty("external_id").GetString()}:{r.GetProperty("last_action").GetString()}"));
        Assert.NotEqual(JsonValueKind.Null, changes.GetProperty("items")[1].GetProperty("deleted_at").ValueKind);
        var deletions = await (await team.Viewer.Http.GetAsync($"{feed}?cursor={start}&action=deleted")).AssertStatusAsync(200);
        Assert.Equal("3", Assert.Single(deletions.GetProperty("items").EnumerateArray()).GetProperty("external_id").GetString());

        await (await team.Viewer.Http.GetAsync($"{feed}?action=renamed")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"{feed}?cursor=not-a-cursor")).AssertProblemAsync(400);
        var otherConnector = await ConnectorAsync(team, Manifest(source.Stub.Url));
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{otherConnector}/records?cursor={caughtUp}")).AssertProblemAsync(400);
        var other = await server.TeamAsync();
        await (await other.Admin.Http.GetAsync($"/v1/workspaces/{other.Id}/connectors/{connectorId}/records")).AssertProblemAsync(404);
        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal("completed", connector.GetProperty("last_sync_status").GetString());

        // Another API process (as after a restart) reads the same feed from the same cursor.
        var restarted = Plugboard.Hosting.PlugboardApp.Build([], new Plugboard.Hosting.PlugboardHostOptions(Directory.CreateTempSubdirectory("pb-restart").FullName,
            "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: Plugboard.Hosting.HostMode.Api), new Dictionary<string, string?>
            {
                ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
                ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword,
                ["PLUGBOARD_KEYS"] = server.Keys.ToJson(),
            });
        await restarted.StartAsync();
        try
        {
            var address = restarted.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features
                .Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First();
            using var again = new HttpClient { BaseAddress = new Uri(address) };
            again.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", team.Viewer.Key);
            var replayed = await (await again.GetAsync($"{feed}?cursor={caughtUp}")).AssertStatusAsync(200);
            Assert.Equal(changes.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("external_id").GetString()),
                replayed.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("external_id").GetString()));
            Assert.Equal(changes.GetProperty("next_cursor").GetString(), replayed.GetProperty("next_cursor").GetString());
        }
        finally
        {
            await restarted.StopAsync();
            await restarted.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_truncated_or_failed_full_refresh_deletes_nothing_and_moves_no_cursor()
    {
        await using var source = await Source.StartAsync(6);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        Counts(await SyncAsync(team.Member, team, connectorId), fetched: 6, created: 6, updated: 0, unchanged: 0, deleted: 0);

        // The page limit stops the run before the API's last page: records it did not reach are not deleted.
        // Its cursor does not move either: record 1 changed later than any other, but older pages were never read.
        await (await team.Admin.Http.PatchAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}",
            new { manifest = Manifest(source.Stub.Url, maxPages: 2) })).AssertStatusAsync(200);
        source.Records[1] = ("Issue 1", "Edited late", "2026-12-01T08:00:00Z");
        var truncated = await SyncAsync(team.Member, team, connectorId);
        Counts(truncated, fetched: 4, created: 0, updated: 1, unchanged: 3, deleted: 0);
        Assert.Equal("2026-11-16T08:00:00Z", truncated.GetProperty("cursor_after").GetProperty("issues").GetString());
        Counts(await SyncAsync(team.Member, team, connectorId, fullRefresh: true), fetched: 4, created: 0, updated: 0, unchanged: 4, deleted: 0);

        source.Failing = true;
        var failed = await SyncAsync(team.Member, team, connectorId, fullRefresh: true);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Contains("HTTP 400", failed.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(failed.GetProperty("cursor_before").ToString(), failed.GetProperty("cursor_after").ToString());
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE connector_id = @id AND is_deleted",
            new { id = Guid.Parse(connectorId) }));
        Assert.Equal("2026-11-16T08:00:00Z", await server.OwnerScalarAsync<string>(
            "SELECT cursor #>> '{}' FROM connector_stream_states WHERE connector_id = @id", new { id = Guid.Parse(connectorId) }));
        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(1, connector.GetProperty("error_count").GetInt32());
        Assert.Contains("HTTP 400", connector.GetProperty("last_error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_start_while_a_sync_runs_is_refused_and_viewers_cannot_start_one()
    {
        await using var source = await Source.StartAsync(1);
        source.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        await (await team.Viewer.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { })).AssertProblemAsync(403);
        var started = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { });
        var log = await started.AssertStatusAsync(202);
        var refused = await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { })).AssertProblemAsync(409, "sync-running");
        Assert.Equal(log.GetProperty("id").GetString(), refused.GetProperty("sync_id").GetString());
        source.Gate.SetResult();
        Counts(await WaitForEndAsync(team.Member, started.Headers.Location!.ToString()), fetched: 1, created: 1, updated: 0, unchanged: 0, deleted: 0);
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE connector_id = @id", new { id = Guid.Parse(connectorId) }));

        var other = await server.TeamAsync();
        await (await other.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{other.Id}/connectors/{connectorId}/sync", new { })).AssertProblemAsync(404);
        await (await other.Admin.Http.GetAsync($"/v1/workspaces/{other.Id}/connectors/{connectorId}/syncs")).AssertProblemAsync(404);
        var listed = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/syncs?status=completed&trigger=manual")).AssertStatusAsync(200);
        Assert.Equal(log.GetProperty("id").GetString(), Assert.Single(listed.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task A_running_sync_streams_its_progress_then_its_end()
    {
        await using var source = await Source.StartAsync(5);
        source.LaterPagesGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url));
        var started = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { });
        var location = started.Headers.Location!.ToString();
        await started.AssertStatusAsync(202);
        using var streaming = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        streaming.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", team.Viewer.Key);
        using var stream = await streaming.GetStreamAsync(location + "/stream");
        using var reader = new StreamReader(stream);
        var events = new List<(string Event, JsonElement Data)>();
        string? name = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var data = JsonDocument.Parse(line[6..]).RootElement.Clone();
                events.Add((name!, data));
                // The first page is in and the second is held: the stream shows the sync running with its first page.
                if (name == "progress" && data.GetProperty("status").GetString() == "running" && data.GetProperty("pages").GetInt32() == 1)
                {
                    source.LaterPagesGate.TrySetResult();
                }
                if (name == "end")
                {
                    break;
                }
            }
        }
        Assert.Contains(events, e => e.Event == "progress" && e.Data.GetProperty("status").GetString() == "running" && e.Data.GetProperty("pages").GetInt32() == 1);
        var end = Assert.Single(events, e => e.Event == "end").Data;
        Counts(end, fetched: 5, created: 5, updated: 0, unchanged: 0, deleted: 0);
        Assert.Equal(3, end.GetProperty("pages").GetInt32());
        var other = await server.TeamAsync();
        await (await other.Admin.Http.GetAsync(location.Replace(team.Id, other.Id, StringComparison.Ordinal) + "/stream")).AssertProblemAsync(404);
    }

    [Fact]
    public async Task Five_failures_in_a_row_pause_the_connector_with_an_audit_row_and_resuming_clears_the_count()
    {
        await using var source = await Source.StartAsync(1);
        source.Failing = true;
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, Manifest(source.Stub.Url), frequency: "hourly");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("failed", (await SyncAsync(team.Member, team, connectorId)).GetProperty("status").GetString());
        }
        var paused = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.NotEqual(JsonValueKind.Null, paused.GetProperty("sync_paused_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, paused.GetProperty("next_sync_at").ValueKind);
        Assert.Equal(5, paused.GetProperty("error_count").GetInt32());
        Assert.Contains("HTTP 400", paused.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM audit_log WHERE workspace_id = @ws AND action = 'connector.sync_paused' AND target_id = @id", new { ws = team.Id, id = connectorId }));

        await (await team.Member.Http.PostAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/resume", null)).AssertProblemAsync(403);
        var resumed = await (await team.Admin.Http.PostAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/resume", null)).AssertStatusAsync(200);
        Assert.Equal(0, resumed.GetProperty("error_count").GetInt32());
        Assert.Equal(JsonValueKind.Null, resumed.GetProperty("sync_paused_at").ValueKind);
        Assert.True(resumed.GetProperty("next_sync_at").GetDateTime() > DateTime.UtcNow.AddMinutes(55)); // the last sync started just now
        var pausedAgain = await (await team.Admin.Http.PostAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/pause", null)).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, pausedAgain.GetProperty("next_sync_at").ValueKind);
        Assert.Equal(2, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM audit_log WHERE workspace_id = @ws AND action IN ('connector.sync_resumed', 'connector.sync_paused') AND target_id = @id AND actor_user_id IS NOT NULL",
            new { ws = team.Id, id = connectorId }));
    }

    [Fact]
    public async Task Several_schedulers_start_each_due_connector_exactly_once_and_move_it_to_its_next_time()
    {
        await using var source = await Source.StartAsync(1);
        var team = await server.TeamAsync();
        var ids = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            ids.Add(await ConnectorAsync(team, Manifest(source.Stub.Url), frequency: "hourly"));
        }
        var manual = await ConnectorAsync(team, Manifest(source.Stub.Url));
        var schedulers = Enumerable.Range(0, 4).Select(_ => new SyncScheduler(server.Service<Db>(), server.Service<SyncSchedulerOptions>(),
            server.Service<Plugboard.Features.Retention.RetentionPruner>(), server.Service<Plugboard.Features.Retention.RetentionOptions>(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<SyncScheduler>.Instance)).ToList();
        using var barrier = new Barrier(schedulers.Count);
        await Task.WhenAll(schedulers.Select(s => Task.Run(async () =>
        {
            barrier.SignalAndWait();
            await s.TickAsync(CancellationToken.None);
        })));
        var counts = await server.OwnerScalarAsync<string>(
            """
            SELECT string_agg(n::text, ',') FROM (
                SELECT count(l.id) AS n FROM connectors c LEFT JOIN connector_sync_logs l ON l.connector_id = c.id AND l.trigger = 'schedule'
                 WHERE c.workspace_id = @ws AND c.sync_frequency = 'hourly' GROUP BY c.id) x
            """, new { ws = team.Id });
        Assert.Equal(string.Join(',', Enumerable.Repeat("1", 12)), counts);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE connector_id = @id", new { id = Guid.Parse(manual) }));
        Assert.Equal(12, await server.OwnerScalarAsync<long>(
            "SELECT count(*) FROM connectors WHERE workspace_id = @ws AND sync_frequency = 'hourly' AND next_sync_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'",
            new { ws = team.Id }));
        // A second round finds nothing due among them.
        await schedulers[0].TickAsync(CancellationToken.None);
        Assert.Equal(12, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws AND trigger = 'schedule'", new { ws = team.Id }));
        foreach (var id in ids)
        {
            var log = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{id}/syncs")).AssertStatusAsync(200);
            var sync = Assert.Single(log.GetProperty("items").EnumerateArray());
            await WaitForEndAsync(team.Viewer, $"/v1/workspaces/{team.Id}/connectors/{id}/syncs/{sync.GetProperty("id").GetString()}");
        }
    }

    [Fact]
    public async Task Starts_missed_during_downtime_are_spread_over_the_catch_up_window_not_started_at_once()
    {
        await using var source = await Source.StartAsync(1);
        var team = await server.TeamAsync();
        for (var i = 0; i < 20; i++)
        {
            await ConnectorAsync(team, Manifest(source.Stub.Url), frequency: "15m");
        }
        await server.OwnerExecuteAsync("UPDATE connectors SET next_sync_at = now() - interval '3 hours' WHERE workspace_id = @ws", new { ws = team.Id });
        var tick = await server.Service<SyncScheduler>().TickAsync(CancellationToken.None);
        Assert.True(tick.Spread >= 20, tick.ToString());
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws", new { ws = team.Id }));
        var window = server.Service<SyncSchedulerOptions>().CatchUpWindow.TotalSeconds;
        var offsets = (await server.OwnerScalarAsync<string>(
            "SELECT string_agg(extract(epoch FROM next_sync_at - now())::int::text, ',') FROM connectors WHERE workspace_id = @ws", new { ws = team.Id }))
            .Split(',').Select(int.Parse).ToList();
        Assert.All(offsets, o => Assert.InRange(o, -2, window + 1));
        Assert.True(offsets.Distinct().Count() > 10, string.Join(",", offsets)); // spread, not one burst

        // Once due again (within the window), they start normally.
        await server.OwnerExecuteAsync("UPDATE connectors SET next_sync_at = now() WHERE workspace_id = @ws", new { ws = team.Id });
        await server.Service<SyncScheduler>().TickAsync(CancellationToken.None);
        Assert.Equal(20, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws AND trigger = 'schedule'", new { ws = team.Id }));
    }

    [Fact]
    public async Task Frequencies_and_time_zones_are_checked_and_next_sync_at_follows_them()
    {
        var team = await server.TeamAsync();
        var url = $"/v1/workspaces/{team.Id}/connectors";
        await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "bad", sync_frequency = "every tuesday" })).AssertProblemAsync(422);
        await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "bad", sync_frequency = "61 * * * *" })).AssertProblemAsync(422);
        await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "bad", sync_frequency = "H 9 * * *" })).AssertProblemAsync(422);
        var zone = await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "bad", sync_frequency = "0 9 * * *", sync_timezone = "Mars/Olympus" })).AssertProblemAsync(422);
        Assert.Contains("IANA", zone.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var manual = await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "manual" })).AssertStatusAsync(201);
        Assert.Equal(JsonValueKind.Null, manual.GetProperty("next_sync_at").ValueKind);
        var cron = await (await team.Admin.Http.PostAsJsonAsync(url, new { name = "cron", sync_frequency = "0 9 * * *", sync_timezone = "Asia/Tokyo" })).AssertStatusAsync(201);
        Assert.Equal("Asia/Tokyo", cron.GetProperty("sync_timezone").GetString());
        var next = cron.GetProperty("next_sync_at").GetDateTime();
        Assert.Equal(0, next.Minute);
        Assert.Equal(0, next.Hour); // 09:00 in Tokyo is 00:00 UTC
        Assert.InRange(next - DateTime.UtcNow, TimeSpan.Zero, TimeSpan.FromHours(24));

        var id = cron.GetProperty("id").GetString();
        var daily = await (await team.Admin.Http.PatchAsJsonAsync($"{url}/{id}", new { sync_frequency = "daily" })).AssertStatusAsync(200);
        Assert.InRange(daily.GetProperty("next_sync_at").GetDateTime() - DateTime.UtcNow, TimeSpan.FromSeconds(-5), TimeSpan.FromSeconds(5)); // never synced: due now
        var inactive = await (await team.Admin.Http.PatchAsJsonAsync($"{url}/{id}", new { is_active = false })).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, inactive.GetProperty("next_sync_at").ValueKind);
        var active = await (await team.Admin.Http.PatchAsJsonAsync($"{url}/{id}", new { is_active = true })).AssertStatusAsync(200);
        Assert.NotEqual(JsonValueKind.Null, active.GetProperty("next_sync_at").ValueKind);
        var realtime = await (await team.Admin.Http.PatchAsJsonAsync($"{url}/{id}", new { sync_frequency = "realtime" })).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, realtime.GetProperty("next_sync_at").ValueKind);
        var off = await (await team.Admin.Http.PatchAsJsonAsync($"{url}/{id}", new { sync_frequency = "manual" })).AssertStatusAsync(200);
        Assert.Equal(JsonValueKind.Null, off.GetProperty("next_sync_at").ValueKind);
    }

    [Fact]
    public void Cron_schedules_keep_their_local_time_across_daylight_saving_changes()
    {
        Assert.True(SyncSchedule.TryParse("30 2 * * *", "Europe/Berlin", out var nightly, out _));
        // 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin; the 02:30 run happens at the jump (01:00 UTC).
        Assert.Equal(DateTimeOffset.Parse("2026-03-29T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
            nightly.Next(DateTimeOffset.Parse("2026-03-28T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture), null));
        // 2026-10-25: 02:00–03:00 happens twice; a fixed time runs once, at the first 02:30 (00:30 UTC).
        var october = nightly.Next(DateTimeOffset.Parse("2026-10-24T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture), null)!.Value;
        Assert.Equal(DateTimeOffset.Parse("2026-10-25T00:30:00Z", System.Globalization.CultureInfo.InvariantCulture), october);
        Assert.Equal(DateTimeOffset.Parse("2026-10-26T01:30:00Z", System.Globalization.CultureInfo.InvariantCulture), nightly.After(october, october.AddMinutes(1)));
        // Winter and summer: 09:00 local is 08:00 and 07:00 UTC.
        Assert.True(SyncSchedule.TryParse("0 9 * * 1-5", "Europe/Berlin", out var workdays, out _));
        Assert.Equal(DateTimeOffset.Parse("2026-12-07T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
            workdays.Next(DateTimeOffset.Parse("2026-12-05T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), null)); // Saturday → Monday
        Assert.Equal(DateTimeOffset.Parse("2026-06-01T07:00:00Z", System.Globalization.CultureInfo.InvariantCulture),
            workdays.Next(DateTimeOffset.Parse("2026-05-31T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), null));
        // Intervals count from the last start; missed ones are not replayed.
        Assert.True(SyncSchedule.TryParse("15m", null, out var quarter, out _));
        var start = DateTimeOffset.Parse("2026-12-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(start.AddMinutes(15), quarter.Next(start.AddMinutes(1), start));
        Assert.Equal(start.AddHours(2), quarter.Next(start.AddHours(2), start));
        Assert.Equal(start.AddHours(2).AddMinutes(15), quarter.After(start, start.AddHours(2)));
        Assert.False(SyncSchedule.TryParse("0 9 * *", null, out _, out var error));
        Assert.Contains("five fields", error, StringComparison.Ordinal);
    }

    /// <summary>The test manifest with the records step's pages named as its items (so a sync checkpoints them; the test
    /// server checkpoints every 4 records) and, optionally, the cursor declared ordered.</summary>
    private static object CheckpointedManifest(string baseUrl, bool ordered)
    {
        var manifest = (Dictionary<string, object?>)Manifest(baseUrl);
        manifest["steps"] = new[]
        {
            new Dictionary<string, object?>
            {
                ["id"] = "list",
                ["request"] = new { method = "GET", path = "/issues", query = new { since = "{{ sync.cursor.issues }}" } },
                ["extract"] = new { items = "$.items[*]" },
                ["paginate"] = new { type = "cursor", cursor_param = "after", cursor_path = "$.next", items = "items" },
            },
        };
        manifest["streams"] = new[]
        {
            new
            {
                name = "issues",
                records = "steps.list.items",
                primary_key = "{{ record.id }}",
                cursor = new { field = "{{ record.updated_at }}", ordered },
                document = new { title = "{{ record.title }}", content = "{{ record.body }}" },
            },
        };
        return manifest;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Pages_are_committed_as_the_sync_goes_and_a_failure_keeps_them_with_the_cursor_only_an_ordered_stream_moves(bool ordered)
    {
        await using var source = await Source.StartAsync(6);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, CheckpointedManifest(source.Stub.Url, ordered));

        // The third page fails: the first four records (one checkpoint) are in, the last two are not.
        source.FailFrom = 4;
        var response = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { });
        var failed = await WaitForEndAsync(team.Member, (await response.AssertStatusAsync(202)).GetProperty("id").GetString() is { } id
            ? $"/v1/workspaces/{team.Id}/connectors/{connectorId}/syncs/{id}" : "");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal((4, 4), (failed.GetProperty("records_fetched").GetInt32(), failed.GetProperty("records_created").GetInt32()));
        Assert.Equal(4L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE connector_id = @id", new { id = Guid.Parse(connectorId) }));
        var stored = await server.OwnerScalarAsync<string?>(
            "SELECT cursor #>> '{}' FROM connector_stream_states WHERE connector_id = @id AND stream = 'issues'", new { id = Guid.Parse(connectorId) });
        Assert.Equal(ordered ? "2026-11-14T08:00:00Z" : null, stored);
        Assert.Equal(ordered ? "2026-11-14T08:00:00Z" : null, failed.GetProperty("cursor_after").TryGetProperty("issues", out var after) ? after.GetString() : null);

        source.FailFrom = int.MaxValue;
        Counts(await SyncAsync(team.Member, team, connectorId), fetched: 6, created: 2, updated: 0, unchanged: 4, deleted: 0);
        Assert.Equal("2026-11-16T08:00:00Z", await server.OwnerScalarAsync<string>(
            "SELECT cursor #>> '{}' FROM connector_stream_states WHERE connector_id = @id AND stream = 'issues'", new { id = Guid.Parse(connectorId) }));
    }
}
