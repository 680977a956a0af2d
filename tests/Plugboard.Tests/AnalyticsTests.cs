using System.Net.Http.Json;
using System.Text.Json;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Daily activity per workspace and connector, through the API and on the dashboard's page.</summary>
[Collection(ServerCollection.Name)]
public sealed class AnalyticsTests(PlugboardServer server)
{
    [Fact]
    public async Task Executions_records_and_webhook_events_are_counted_per_utc_day_in_the_callers_workspace_only()
    {
        var team = await server.TeamAsync();
        var other = await server.TeamAsync();
        var first = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "a" })).AssertStatusAsync(201)).GetProperty("id").GetGuid();
        var second = (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "b" })).AssertStatusAsync(201)).GetProperty("id").GetGuid();
        var theirs = (await (await other.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{other.Id}/connectors", new { name = "c" })).AssertStatusAsync(201)).GetProperty("id").GetGuid();
        await server.OwnerExecuteAsync(
            """
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, duration_ms, created_at)
            SELECT @ws, gen_random_uuid(), @first, 'succeeded', d, date_trunc('day', now()) - interval '1 day' + interval '1 hour' FROM generate_series(10, 100, 10) d;
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, duration_ms, created_at) VALUES
                (@ws, gen_random_uuid(), @first, 'failed', 500, date_trunc('day', now()) + interval '1 minute'),
                (@ws, gen_random_uuid(), @second, 'timed_out', 900, date_trunc('day', now()) + interval '1 minute'),
                (@ws, gen_random_uuid(), @second, 'queued', NULL, date_trunc('day', now()) + interval '1 minute'),
                (@ows, gen_random_uuid(), @theirs, 'succeeded', 5, date_trunc('day', now()) + interval '1 minute');
            INSERT INTO connector_sync_logs (workspace_id, id, connector_id, status, records_created, records_updated, created_at) VALUES
                (@ws, gen_random_uuid(), @first, 'completed', 3, 2, date_trunc('day', now()) + interval '1 minute'),
                (@ows, gen_random_uuid(), @theirs, 'completed', 50, 0, date_trunc('day', now()) + interval '1 minute');
            INSERT INTO connector_webhook_events (workspace_id, id, connector_id, received_at) VALUES
                (@ws, gen_random_uuid(), @second, date_trunc('day', now()) + interval '1 minute'),
                (@ws, gen_random_uuid(), @second, date_trunc('day', now()) - interval '3 days');
            """, new { ws = team.Id, ows = other.Id, first, second, theirs });

        var all = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics?days=7")).AssertStatusAsync(200);
        var days = all.GetProperty("series").EnumerateArray().ToList();
        Assert.Equal(7, days.Count);
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM-dd"), days[^1].GetProperty("day").GetString());
        var today = days[^1];
        var yesterday = days[^2];
        Assert.Equal(10, yesterday.GetProperty("succeeded").GetInt64());
        Assert.Equal(55, yesterday.GetProperty("duration_p50_ms").GetDouble(), 0.5); // the interpolated median of 10, 20, …, 100
        Assert.Equal(95.5, yesterday.GetProperty("duration_p95_ms").GetDouble(), 0.5);
        Assert.Equal(2, today.GetProperty("failed").GetInt64());
        Assert.Equal(1, today.GetProperty("other").GetInt64());
        Assert.Equal(0, today.GetProperty("succeeded").GetInt64()); // the other workspace's run is not ours
        Assert.Equal(5, today.GetProperty("records_imported").GetInt64());
        Assert.Equal(1, today.GetProperty("webhook_events").GetInt64());
        Assert.Equal(1, days[^4].GetProperty("webhook_events").GetInt64());

        var one = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics?days=2&connector_id={second}")).AssertStatusAsync(200);
        var secondToday = one.GetProperty("series").EnumerateArray().Last();
        Assert.Equal(1, secondToday.GetProperty("failed").GetInt64());
        Assert.Equal(0, secondToday.GetProperty("records_imported").GetInt64());

        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics?days=0")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics?days=91")).AssertProblemAsync(400);
        await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics?connector_id={theirs}")).AssertProblemAsync(404);
        await (await other.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/analytics")).AssertProblemAsync(404);

        // The page draws the same numbers as SVG charts (no script) and lists them in a table.
        var cookies = new System.Net.CookieContainer();
        using var browser = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = server.BaseAddress };
        (await browser.PostAsync("/sign-in", new FormUrlEncodedContent(new Dictionary<string, string> { ["api_key"] = team.Viewer.Key }))).EnsureSuccessStatusCodeOrRedirect();
        var html = await browser.GetStringAsync($"/w/{team.Id}/analytics?days=7");
        Assert.Equal(4, System.Text.RegularExpressions.Regex.Matches(html, "<svg viewBox=").Count);
        Assert.Contains($"<th scope=\"row\">{DateTime.UtcNow:yyyy-MM-dd}</th><td>0</td><td>2</td><td>1</td>", html);
        Assert.Contains("aria-label=\"Executions per day, 7 days, highest 10 executions\"", html);
    }
}

internal static class RedirectAssertions
{
    public static void EnsureSuccessStatusCodeOrRedirect(this HttpResponseMessage response) =>
        Assert.True((int)response.StatusCode is >= 200 and < 400, response.StatusCode.ToString());
}
