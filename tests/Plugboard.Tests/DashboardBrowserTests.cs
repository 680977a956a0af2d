using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Playwright;
using Plugboard.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace Plugboard.Tests;

/// <summary>The dashboard in a real browser (Debian's chromium through Playwright), against the real server and stubs.</summary>
[Collection(ServerCollection.Name)]
public sealed class DashboardBrowserTests(PlugboardServer server, Chromium chromium) : IClassFixture<Chromium>
{
    private static async Task SignInAsync(IPage page, string key)
    {
        await page.GotoAsync("/sign-in");
        await page.GetByLabel("API key").FillAsync(key);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).Not.ToHaveTextAsync("Sign in to Plugboard");
    }

    [Fact]
    public async Task A_newcomer_signs_in_installs_a_template_runs_it_live_uploads_a_file_and_finds_it()
    {
        var team = await server.TeamAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/records", async (HttpContext http) =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(60)); // held until the test watches the run's page
            var first = http.Request.Query["offset"] is var offset && (offset.Count == 0 || offset == "0" || offset == "");
            return Results.Json(new { data = first ? new[] { new { id = "r1", title = "First record", updated_at = "2026-11-30T10:00:00Z" } } : [] });
        }));
        var page = await chromium.NewPageAsync(server.BaseAddress);

        await SignInAsync(page, team.Admin.Key);
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/w/{team.Id}/connectors$"));
        await Expect(page.GetByText("No connectors yet")).ToBeVisibleAsync();
        await Chromium.AssertAccessibleAsync(page);

        // The marketplace: search, open the template, install it with this workspace's own key and the stub's address.
        await page.GetByRole(AriaRole.Link, new() { Name = "Marketplace" }).ClickAsync();
        await page.GetByLabel("Search templates").FillAsync("Generic REST");
        await page.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        await Chromium.ScreenshotAsync(page, "marketplace");
        await Chromium.AssertAccessibleAsync(page);
        await page.GetByRole(AriaRole.Link, new() { Name = "Generic REST API (API key)" }).ClickAsync();
        await page.GetByLabel("Connector name").FillAsync("My records");
        await page.GetByLabel("API key (required)").FillAsync(server.Canary);
        await page.GetByLabel("base_url (required)").FillAsync(stub.Url);
        await Chromium.ScreenshotAsync(page, "template-install");
        await Chromium.AssertAccessibleAsync(page);
        await page.GetByRole(AriaRole.Button, new() { Name = "Install" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync("My records");
        await Expect(page.GetByText("set (write-only: ••••••••)")).ToBeVisibleAsync();
        await Chromium.ScreenshotAsync(page, "connector");
        await Chromium.AssertAccessibleAsync(page);

        // Run it: the run's page opens while the stub holds the request; the step and the success arrive live.
        await page.GetByRole(AriaRole.Button, new() { Name = "Run now" }).ClickAsync();
        await Expect(page.Locator("#execution-status")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^(queued|running)$"));
        Assert.Equal(0, await page.Locator("#steps > li").CountAsync());
        release.SetResult();
        await Expect(page.Locator("#execution-status")).ToHaveTextAsync("succeeded");
        await Expect(page.Locator("#steps > li")).ToHaveCountAsync(2); // the page with the record, then the empty one that ends the paging
        await Expect(page.Locator("#steps > li [data-field=step_id]")).ToHaveTextAsync(["list", "list"]);
        await Expect(page.Locator("#steps > li [data-field=status]")).ToHaveTextAsync(["200", "200"]);
        await Expect(page.Locator("#execution-output")).ToContainTextAsync("First record");
        Assert.DoesNotContain(server.Canary, await page.ContentAsync());
        Assert.Contains(stub.Requests, r => r.Headers.GetValueOrDefault("X-API-Key") == server.Canary);
        await Chromium.ScreenshotAsync(page, "execution");
        await Chromium.AssertAccessibleAsync(page);
        var firstRun = page.Url;
        await page.GetByRole(AriaRole.Button, new() { Name = "Run again" }).ClickAsync();
        await Expect(page).Not.ToHaveURLAsync(firstRun);
        await Expect(page.Locator("#execution-status")).ToHaveTextAsync("succeeded");

        // Upload a file into a batch and watch it complete.
        await page.GetByRole(AriaRole.Link, new() { Name = "Uploads" }).ClickAsync();
        await page.Locator("#upload-files").SetInputFilesAsync(new FilePayload
        {
            Name = "field-notes.txt",
            MimeType = "text/plain",
            Buffer = Encoding.UTF8.GetBytes("Field notes: the okapi census counted forty okapis near the river this season."),
        });
        await Expect(page.Locator("#upload-files-list li [data-field=outcome]")).ToHaveTextAsync("accepted");
        await Expect(page.Locator("#batch-summary")).ToContainTextAsync("1 of 1 processed, 0 failed — completed");
        await Chromium.ScreenshotAsync(page, "uploads");
        await Chromium.AssertAccessibleAsync(page);

        // Find it.
        await page.GetByRole(AriaRole.Link, new() { Name = "Search" }).ClickAsync();
        await page.GetByLabel("Search documents").FillAsync("okapi census");
        await page.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        var hit = page.Locator(".hit").First;
        await Expect(hit).ToContainTextAsync("field-notes.txt");
        Assert.Matches($"^/v1/workspaces/{team.Id}/documents/[0-9a-f-]{{36}}/content$", await hit.Locator("h2 a").GetAttributeAsync("href"));
        await Expect(hit.Locator("mark").First).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^okapi", System.Text.RegularExpressions.RegexOptions.IgnoreCase));
        await Chromium.ScreenshotAsync(page, "search");
        await Chromium.AssertAccessibleAsync(page);
        // The source filter: the file is an upload, not a synced document.
        await page.GetByLabel("Source").SelectOptionAsync("sync");
        await page.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        await Expect(page.GetByText("Nothing found for “okapi census”.")).ToBeVisibleAsync();
        await page.GetByLabel("Source").SelectOptionAsync("upload");
        await page.GetByRole(AriaRole.Button, new() { Name = "Search" }).ClickAsync();
        await Expect(page.Locator(".hit").First).ToContainTextAsync("field-notes.txt");

        // The runs list shows the run.
        await page.GetByRole(AriaRole.Link, new() { Name = "Runs" }).ClickAsync();
        await Expect(page.Locator("table tbody tr")).ToHaveCountAsync(2);
        await Expect(page.Locator("table tbody tr").First).ToContainTextAsync("succeeded");
        await Chromium.ScreenshotAsync(page, "runs");
        await Chromium.AssertAccessibleAsync(page);

        // Analytics: today's two successful runs are in the chart's table.
        await page.GetByRole(AriaRole.Link, new() { Name = "Analytics" }).ClickAsync();
        await page.GetByText("The numbers").ClickAsync();
        await Expect(page.Locator("#analytics-table tbody tr").Last.Locator("td").First).ToHaveTextAsync("2");
        await Chromium.ScreenshotAsync(page, "analytics");
        await Chromium.AssertAccessibleAsync(page);
        Assert.True(page.ConsoleErrors().Count == 0, string.Join("\n", page.ConsoleErrors()));
        Assert.DoesNotContain(server.Canary, server.LogText);
    }

    [Fact]
    public async Task Each_role_sees_only_the_controls_it_may_use_and_the_server_refuses_the_rest()
    {
        var team = await server.TeamAsync();
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = "Roles" })).AssertStatusAsync(201);
        var path = $"/w/{team.Id}/connectors/{connector.GetProperty("id").GetString()}";
        var expected = new Dictionary<string, (bool Run, bool Pause)> { ["viewer"] = (false, false), ["member"] = (true, false), ["admin"] = (true, true) };
        foreach (var (role, can) in expected)
        {
            var page = await chromium.NewPageAsync(server.BaseAddress, phone: role == "member");
            await SignInAsync(page, team.As(role).Key);
            await page.GotoAsync(path);
            Assert.Equal(can.Run ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Run now" }).CountAsync());
            Assert.Equal(can.Pause ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Pause connector" }).CountAsync());
            Assert.Equal(can.Pause ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Rotate signing secret" }).CountAsync());
            await Chromium.ScreenshotAsync(page, $"connector-as-{role}{(role == "member" ? "-phone" : "")}");
            await Chromium.AssertAccessibleAsync(page);
            // The studio checks anyone's draft; only admins test-run it (with a connector's credential) or save it.
            await page.GotoAsync($"/w/{team.Id}/studio?connector_id={connector.GetProperty("id").GetString()}");
            await Expect(page.Locator("#studio-validity")).ToContainTextAsync("Valid");
            Assert.Equal(can.Pause ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Test run" }).CountAsync());
            Assert.Equal(can.Pause ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Save as template" }).CountAsync());
            Assert.Equal(can.Pause ? 1 : 0, await page.GetByRole(AriaRole.Button, new() { Name = "Save to Roles" }).CountAsync());
            if (role == "viewer")
            {
                // What the page does not offer, the API refuses, even with the session's own CSRF token.
                var status = await page.EvaluateAsync<int>(
                    """
                    async (url) => (await fetch(url, { method: "PATCH", headers: { "Content-Type": "application/json",
                        "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content }, body: JSON.stringify({ is_active: false }) })).status
                    """, $"/v1/workspaces/{team.Id}/connectors/{connector.GetProperty("id").GetString()}");
                Assert.Equal(403, status);
            }
        }
        // The admin pauses it from the page; what the API refuses shows its problem's detail.
        var admin = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(admin, team.Admin.Key);
        await admin.GotoAsync(path);
        admin.Dialog += (_, dialog) => dialog.AcceptAsync();
        await admin.GetByRole(AriaRole.Button, new() { Name = "Rotate signing secret" }).ClickAsync();
        await Expect(admin.Locator("#flash")).ToContainTextAsync("no webhooks section");
        await admin.GetByRole(AriaRole.Button, new() { Name = "Pause connector" }).ClickAsync();
        await Expect(admin.GetByRole(AriaRole.Button, new() { Name = "Resume connector" })).ToBeVisibleAsync();
        Assert.False(await server.OwnerScalarAsync<bool>("SELECT is_active FROM connectors WHERE id = @id", new { id = Guid.Parse(connector.GetProperty("id").GetString()!) }));
    }

    [Fact]
    public async Task Another_origin_cannot_use_the_session_and_hostile_names_stay_text()
    {
        var team = await server.TeamAsync();
        const string payload = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new { name = payload, description = payload })).AssertStatusAsync(201);
        var page = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(page, team.Admin.Key);
        await page.GotoAsync($"/w/{team.Id}/connectors");
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = payload })).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = payload }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync(payload);
        Assert.Null(await page.EvaluateAsync<int?>("() => window.__pwned ?? null"));
        await Chromium.ScreenshotAsync(page, "hostile-names");

        // A page on another origin (same host, another port: same-site, so the cookie goes along) posts the dashboard's
        // forms and calls its API: refused for want of the CSRF token, and the session lives on.
        await using var evil = await Stub.StartAsync(app => app.MapGet("/", () => Results.Content(
            $$"""
            <!DOCTYPE html><html lang="en"><head><title>Evil</title></head><body>
            <form method="post" action="{{server.BaseAddress}}sign-out"><button id="sign-out">Sign out</button></form>
            <form method="post" action="{{server.BaseAddress}}v1/workspaces/{{team.Id}}/connectors" enctype="text/plain">
              <input type="hidden" name='{"name":"csrf","x":"' value='"}'><button id="create">Create</button></form>
            </body></html>
            """, "text/html")));
        var attacker = await page.Context.NewPageAsync();
        await attacker.GotoAsync(evil.Url);
        var signOut = await attacker.RunAndWaitForResponseAsync(() => attacker.ClickAsync("#sign-out"), r => r.Url.EndsWith("/sign-out", StringComparison.Ordinal));
        Assert.Equal(403, signOut.Status);
        await attacker.GotoAsync(evil.Url);
        var create = await attacker.RunAndWaitForResponseAsync(() => attacker.ClickAsync("#create"), r => r.Url.Contains("/connectors", StringComparison.Ordinal));
        Assert.True(create.Status is 403 or 415, $"cross-origin create answered {create.Status}");
        Assert.Equal(1L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connectors WHERE workspace_id = @id", new { id = team.Id }));
        await page.GotoAsync($"/w/{team.Id}/connectors");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync("Connectors");
        // And a script of the same origin without the token is refused as well.
        var status = await page.EvaluateAsync<int>(
            $$"""async () => (await fetch("/v1/workspaces/{{team.Id}}/connectors", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{\"name\":\"x\"}" })).status""");
        Assert.Equal(403, status);
    }

    [Fact]
    public async Task A_connectors_syncs_follow_live_and_its_webhook_events_replay_from_the_page()
    {
        var team = await server.TeamAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/records", async (HttpContext http) =>
        {
            await release.Task.WaitAsync(TimeSpan.FromSeconds(60)); // held until the page shows the sync under way
            var first = http.Request.Query["offset"] is var offset && (offset.Count == 0 || offset == "0");
            return Results.Json(new { data = first ? new[] { new { id = "r1", title = "Synced record", updated_at = "2026-11-30T10:00:00Z" } } : [] });
        }));
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key' AND workspace_id IS NULL");
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install",
            new { workspace_id = team.Id, name = "Synced", credentials = new { api_key = "k" }, config = new { base_url = stub.Url } })).AssertStatusAsync(201);
        var connectorId = Guid.Parse(connector.GetProperty("id").GetString()!);
        const string hostile = "<img src=x onerror=\"window.__pwned=1\">";
        await server.OwnerExecuteAsync(
            """
            INSERT INTO connector_webhook_events (workspace_id, id, connector_id, event_type, verification, signature_valid, processed, processed_at, attempts, note)
            VALUES (@ws, gen_random_uuid(), @connectorId, @hostile, 'standard', true, true, now(), 1, 'no action is mapped to this event type')
            """, new { ws = team.Id, connectorId, hostile });

        var page = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(page, team.Member.Key);
        await page.GotoAsync($"/w/{team.Id}/connectors/{connectorId}");
        await page.GetByRole(AriaRole.Link, new() { Name = "All syncs" }).ClickAsync();
        await Expect(page.GetByText("No syncs yet.")).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Sync now" }).ClickAsync();
        var row = page.Locator("tbody tr").First;
        await Expect(row.Locator("[data-field=status]")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^(queued|running)$"));
        release.SetResult();
        await Expect(row.Locator("[data-field=status]")).ToHaveTextAsync("completed");
        await Expect(row.Locator("[data-field=records_created]")).ToHaveTextAsync("1");
        await Chromium.ScreenshotAsync(page, "syncs");
        await Chromium.AssertAccessibleAsync(page);

        // The records feed: what the sync added, oldest change first.
        await page.GetByRole(AriaRole.Link, new() { Name = "Records feed" }).ClickAsync();
        var record = page.Locator("#records tbody tr");
        await Expect(record).ToHaveCountAsync(1);
        await Expect(record).ToContainTextAsync("Synced record");
        await Expect(record.Locator("td").Nth(1)).ToHaveTextAsync("added");
        await Chromium.ScreenshotAsync(page, "records");
        await Chromium.AssertAccessibleAsync(page);
        await page.GetByLabel("Change").SelectOptionAsync("deleted");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await Expect(page.GetByText("No records yet")).ToBeVisibleAsync();

        // Events: a member sees them (the hostile type as text) but no replay; an admin replays one.
        await page.GotoAsync($"/w/{team.Id}/connectors/{connectorId}/webhook/events");
        await Expect(page.GetByRole(AriaRole.Cell, new() { Name = hostile })).ToBeVisibleAsync();
        await Expect(page.GetByText("no action is mapped to this event type")).ToBeVisibleAsync();
        Assert.Equal(0, await page.GetByRole(AriaRole.Button, new() { Name = "Replay" }).CountAsync());
        Assert.Null(await page.EvaluateAsync<int?>("() => window.__pwned ?? null"));
        var admin = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(admin, team.Admin.Key);
        await admin.GotoAsync($"/w/{team.Id}/connectors/{connectorId}/webhook/events");
        await Chromium.ScreenshotAsync(admin, "webhook-events");
        await Chromium.AssertAccessibleAsync(admin);
        var replay = await admin.RunAndWaitForResponseAsync(
            () => admin.GetByRole(AriaRole.Button, new() { NameRegex = new System.Text.RegularExpressions.Regex("^Replay the ") }).ClickAsync(),
            r => r.Url.EndsWith("/replay", StringComparison.Ordinal));
        Assert.Equal(202, replay.Status);
        var replays = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?action=connector.webhook_replayed")).AssertStatusAsync(200);
        Assert.Single(replays.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task Platform_admins_see_the_queue_and_workers_and_retry_a_dead_job_and_nobody_else_does()
    {
        var admin = await server.NewUserAsync("admin");
        var team = await server.TeamAsync();
        var kind = "dashboard-" + Guid.NewGuid().ToString("N")[..8];
        var jobId = Guid.NewGuid();
        await server.OwnerExecuteAsync(
            "INSERT INTO jobs (id, kind, workspace_id, state, attempts, max_attempts, last_error, finished_at) VALUES (@jobId, @kind, @ws, 'dead', 3, 3, '<b>boom</b>', now())",
            new { jobId, kind, ws = team.Id });

        var owner = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(owner, team.Owner.Key);
        Assert.Equal(0, await owner.GetByRole(AriaRole.Link, new() { Name = "Platform" }).CountAsync());
        var refused = await owner.GotoAsync("/platform");
        Assert.Equal(403, refused!.Status);

        var page = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(page, admin.Key);
        await page.GotoAsync("/platform");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Workers" })).ToBeVisibleAsync();
        var row = page.Locator("#dead-jobs tbody tr", new() { HasText = kind });
        await Expect(row).ToContainTextAsync("<b>boom</b>");
        await Chromium.ScreenshotAsync(page, "platform");
        await Chromium.AssertAccessibleAsync(page);
        var retry = await page.RunAndWaitForResponseAsync(() => row.GetByRole(AriaRole.Button, new() { NameRegex = new System.Text.RegularExpressions.Regex("^Retry ") }).ClickAsync(),
            r => r.Url.EndsWith($"/v1/admin/jobs/{jobId}/retry", StringComparison.Ordinal));
        Assert.Equal(204, retry.Status);
        Assert.NotEqual("dead", await server.OwnerScalarAsync<string>("SELECT state FROM jobs WHERE id = @jobId", new { jobId }));
        await server.OwnerExecuteAsync("DELETE FROM jobs WHERE id = @jobId", new { jobId }); // no worker handles this kind
    }

    private const string StudioDraft = """
        version: 1
        base_url: "{{ config.base_url }}"
        auth:
          type: api_key
          in: header
          name: X-API-Key
          value: "{{ credentials.api_key }}"
        config:
          base_url:
            type: string
            required: true
        steps:
          - id: list
            request:
              method: GET
              path: /records
            extract:
              first: "$.data[0].id"
          - id: detail
            request:
              method: GET
              path: "/records/{{ steps.list.first }}"
            extract:
              title: "$.title"
          - id: again
            request:
              method: GET
              path: "/records/{{ steps.list.first }}"
        output:
          title: "{{ steps.detail.title }}"
        """;

    [Fact]
    public async Task The_studio_checks_and_completes_a_draft_draws_it_test_runs_it_live_and_saves_it_as_a_connector_and_a_template_that_is_moderated()
    {
        var team = await server.TeamAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/records", () => Results.Json(new { data = new[] { new { id = "r7", title = "Listed" } } }));
            app.MapGet("/records/r7", async () =>
            {
                await release.Task.WaitAsync(TimeSpan.FromSeconds(60)); // held until the page shows the first step
                return Results.Json(new { title = "Seventh record" });
            });
        });
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key' AND workspace_id IS NULL");
        var installed = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install",
            new { workspace_id = team.Id, name = "Records", credentials = new { api_key = server.Canary }, config = new { base_url = stub.Url } })).AssertStatusAsync(201);
        var connectorId = installed.GetProperty("id").GetString()!;

        var page = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(page, team.Admin.Key);
        await page.GotoAsync($"/w/{team.Id}/connectors/{connectorId}");
        await page.GetByRole(AriaRole.Link, new() { Name = "Edit the manifest in the studio" }).ClickAsync();
        // The connector's manifest, as YAML, checked and drawn: one paginated step feeding one stream.
        var editor = page.Locator("#studio-editor");
        await Expect(editor).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("^version: 1\n"));
        await Expect(page.Locator("#studio-validity")).ToHaveTextAsync("Valid: 1 step, 1 stream(s)");
        await Expect(page.Locator("#studio-graph .graph-step")).ToHaveCountAsync(1);
        await Expect(page.Locator("#studio-graph .graph-stream")).ToHaveCountAsync(1);
        await Chromium.ScreenshotAsync(page, "studio");
        await Chromium.AssertAccessibleAsync(page);

        // Completion from the schema: the keys a request may have, then the methods.
        await editor.FillAsync("version: 1\nbase_url: https://api.example.test\nsteps:\n  - id: list\n    request:\n      me");
        await editor.PressAsync("Control+End");
        await editor.PressAsync("Control+Space");
        await Expect(page.Locator("#studio-completions [role=option]").First).ToContainTextAsync("method");
        await editor.PressAsync("Enter");
        await Expect(editor).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("\n      method: $"));
        await editor.PressAsync("Control+Space");
        await Expect(page.Locator("#studio-completions [role=option]").First).ToHaveTextAsync("GET");
        await editor.PressAsync("ArrowDown");
        await editor.PressAsync("Enter");
        await Expect(editor).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("\n      method: POST$"));
        await editor.PressAsync("Enter");
        await page.Keyboard.TypeAsync("      pa"); // typing a key opens the suggestions by itself
        await Expect(page.Locator("#studio-completions")).ToBeVisibleAsync();
        await editor.PressAsync("Tab");
        await Expect(editor).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("\n      path: $"));
        await editor.PressAsync("Escape");

        // A problem is listed with its line; choosing it puts the cursor there.
        await editor.FillAsync(StudioDraft.Replace("steps.detail.title", "steps.nowhere.title", StringComparison.Ordinal));
        var issue = page.Locator("#studio-issues li").First;
        await Expect(issue).ToContainTextAsync("nowhere");
        await issue.GetByRole(AriaRole.Button).ClickAsync();
        var line = StudioDraft.Split('\n').ToList().FindIndex(l => l.Contains("steps.detail.title", StringComparison.Ordinal)) + 1;
        await Expect(page.Locator("#studio-cursor")).ToContainTextAsync($"Line {line},");

        // The valid draft: three steps, the third reading the first's result (a data edge besides the sequence).
        await editor.FillAsync(StudioDraft);
        await Expect(page.Locator("#studio-validity")).ToHaveTextAsync("Valid: 3 steps, 0 stream(s)");
        await Expect(page.Locator("#studio-graph .graph-step")).ToHaveCountAsync(3);
        var edge = page.Locator("#studio-graph .graph-use");
        await Expect(edge).ToHaveCountAsync(1);
        Assert.Equal(("list", "again"), (await edge.GetAttributeAsync("data-from"), await edge.GetAttributeAsync("data-to")));

        // Test run with the connector's credential: the first step shows while the second is held, then the end.
        await page.GetByRole(AriaRole.Button, new() { Name = "Test run" }).ClickAsync();
        await Expect(page.Locator("#studio-steps > li [data-field=step_id]")).ToHaveTextAsync(["list"]);
        await Expect(page.Locator("#studio-run-status")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^(queued|running)$"));
        release.SetResult();
        await Expect(page.Locator("#studio-run-status")).ToHaveTextAsync("succeeded");
        await Expect(page.Locator("#studio-steps > li [data-field=step_id]")).ToHaveTextAsync(["list", "detail", "again"]);
        await Expect(page.Locator("#studio-run-output")).ToContainTextAsync("Seventh record");
        Assert.All(stub.Requests, r => Assert.Equal(server.Canary, r.Headers.GetValueOrDefault("X-API-Key")));
        Assert.DoesNotContain(server.Canary, await page.ContentAsync());
        await Chromium.ScreenshotAsync(page, "studio-test-run");
        var connector = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(1, connector.GetProperty("manifest").GetProperty("steps").GetArrayLength()); // a test run saves nothing

        // Save it to the connector, then as a community template.
        await page.GetByRole(AriaRole.Button, new() { Name = "Save to Records" }).ClickAsync();
        await Expect(page.Locator("#flash")).ToContainTextAsync("Saved");
        connector = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}")).AssertStatusAsync(200);
        Assert.Equal(3, connector.GetProperty("manifest").GetProperty("steps").GetArrayLength());
        var slug = "studio-" + Guid.NewGuid().ToString("N")[..8];
        var name = "Studio records " + slug[^8..];
        await page.GetByLabel("Name", new() { Exact = true }).FillAsync(name);
        await page.GetByLabel("Slug (lowercase letters, digits and dashes)").FillAsync(slug);
        await page.GetByLabel("Category (one lowercase word, e.g. crm)").FillAsync("developer-tools");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save as template" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/w/{team.Id}/templates$"));
        var mine = page.Locator($"#templates tr[data-template='{slug}']");
        await Expect(mine).ToContainTextAsync("waiting for review");
        await Chromium.ScreenshotAsync(page, "templates");
        await Chromium.AssertAccessibleAsync(page);
        var template = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/templates")).AssertStatusAsync(200);
        var saved = template.GetProperty("items").EnumerateArray().Single(t => t.GetProperty("slug").GetString() == slug);
        Assert.Equal("api_key", saved.GetProperty("auth_type").GetString());
        Assert.Equal(["api_key"], saved.GetProperty("credential_fields").EnumerateArray().Select(f => f.GetProperty("name").GetString()));

        // Moderation: refused to the workspace's admin, done by a platform admin; the author sees the reason.
        Assert.True(page.ConsoleErrors().Count == 0, string.Join("\n", page.ConsoleErrors()));
        Assert.Equal(403, (await page.GotoAsync("/platform/templates"))!.Status);
        var moderator = await server.NewUserAsync("admin");
        var review = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(review, moderator.Key);
        await review.GotoAsync("/platform/templates");
        await review.GetByRole(AriaRole.Link, new() { Name = name }).ClickAsync();
        await Expect(review.GetByText("the base URL's host only")).ToBeVisibleAsync();
        await Expect(review.Locator("#template-manifest")).ToContainTextAsync("steps.list.first");
        await Chromium.ScreenshotAsync(review, "template-review");
        await Chromium.AssertAccessibleAsync(review);
        await review.GetByLabel("Reason").FillAsync("Describe what the records are.");
        await review.GetByRole(AriaRole.Button, new() { Name = "Reject" }).ClickAsync();
        await Expect(review.Locator("dd").First).ToContainTextAsync("rejected");
        await page.GotoAsync($"/w/{team.Id}/templates");
        await Expect(mine).ToContainTextAsync(new System.Text.RegularExpressions.Regex("rejected\\s— Describe what the records are\\."));
        await review.GetByRole(AriaRole.Button, new() { Name = "Publish" }).ClickAsync();
        await Expect(review.Locator("dd").First).ToContainTextAsync("published");
        await page.GotoAsync($"/w/{team.Id}/marketplace?kind=community&q={Uri.EscapeDataString(name)}");
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = name })).ToBeVisibleAsync();
        Assert.Contains("403", Assert.Single(page.ConsoleErrors()), StringComparison.Ordinal); // the refused moderation page, nothing else
        Assert.True(review.ConsoleErrors().Count == 0, string.Join("\n", review.ConsoleErrors()));
        Assert.DoesNotContain(server.Canary, server.LogText);
    }

    [Fact]
    public async Task An_oauth_template_is_installed_and_connected_through_the_providers_consent_page()
    {
        var team = await server.TeamAsync();
        const string clientId = "dashboard-app", clientSecret = "dashboard-app-secret-41c9";
        var codes = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        var accessToken = "access-" + Guid.NewGuid().ToString("N");
        await using var provider = await Stub.StartAsync(app =>
        {
            // Consent is given at once: the provider sends the browser back with a code for this redirect URI.
            app.MapGet("/authorize", (HttpRequest r) =>
            {
                if (r.Query["client_id"] != clientId || r.Query["code_challenge_method"] != "S256")
                {
                    return Results.BadRequest("bad request");
                }
                var code = "code-" + Guid.NewGuid().ToString("N");
                codes[code] = r.Query["redirect_uri"].ToString();
                return Results.Redirect(Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(r.Query["redirect_uri"].ToString(),
                    new Dictionary<string, string?> { ["code"] = code, ["state"] = r.Query["state"] }));
            });
            app.MapPost("/token", async (HttpRequest r) =>
            {
                var form = await r.ReadFormAsync();
                return form["client_id"] == clientId && form["client_secret"] == clientSecret && codes.TryRemove(form["code"].ToString(), out var redirect) && redirect == form["redirect_uri"]
                    ? Results.Json(new { access_token = accessToken, token_type = "bearer", expires_in = 3600, refresh_token = "refresh-1" })
                    : Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            });
            app.MapGet("/me", (HttpRequest r) => r.Headers.Authorization == "Bearer " + accessToken
                ? Results.Json(new { name = "Ada" }) : Results.Json(new { error = "invalid_token" }, statusCode: 401));
        });
        var name = "OAuth app " + Guid.NewGuid().ToString("N")[..8];
        var created = await (await server.PlatformOwner.Http.PostAsJsonAsync("/v1/admin/templates", new
        {
            slug = "oauth-" + Guid.NewGuid().ToString("N")[..10],
            name,
            auth_type = "oauth2_authorization_code",
            credential_fields = new object[]
            {
                new { name = "client_id", label = "Client ID" }, new { name = "client_secret", label = "Client secret" },
                new { name = "access_token", label = "Access token", required = false },
            },
            manifest = new Dictionary<string, object?>
            {
                ["version"] = 1,
                ["base_url"] = "{{ config.base_url }}",
                ["config"] = new { base_url = new { type = "string", required = true } },
                ["auth"] = new Dictionary<string, object?>
                {
                    ["type"] = "oauth2_authorization_code",
                    ["authorization_url"] = "{{ config.base_url }}/authorize",
                    ["token_url"] = "{{ config.base_url }}/token",
                    ["client_id"] = "{{ credentials.client_id }}",
                    ["client_secret"] = "{{ credentials.client_secret }}",
                },
                ["steps"] = new[] { new { id = "me", request = new { method = "GET", path = "/me" }, extract = new { name = "$.name" } } },
                ["output"] = new { name = "{{ steps.me.name }}" },
            },
        })).AssertStatusAsync(201);
        var templateId = created.GetProperty("id").GetString();
        await (await server.PlatformOwner.Http.PostAsync($"/v1/admin/templates/{templateId}/publish", null)).AssertStatusAsync(200);

        var page = await chromium.NewPageAsync(server.BaseAddress);
        await SignInAsync(page, team.Admin.Key);
        await page.GotoAsync($"/w/{team.Id}/marketplace/{templateId}");
        await Expect(page.GetByText("/v1/oauth/callback")).ToBeVisibleAsync(); // the redirect URI to register
        Assert.Equal(0, await page.GetByLabel("Access token").CountAsync()); // tokens come from the provider, not the form
        await page.GetByLabel("Client ID").FillAsync(clientId);
        await page.GetByLabel("Client secret").FillAsync(clientSecret);
        await page.GetByLabel("base_url (required)").FillAsync(provider.Url);
        await Chromium.AssertAccessibleAsync(page);
        await page.GetByRole(AriaRole.Button, new() { Name = "Install and connect" }).ClickAsync();
        // There (the provider's consent) and back (the callback), to the new connector's page.
        await Expect(page.Locator(".flash.ok")).ToContainTextAsync("Account connected");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"/w/{team.Id}/connectors/[0-9a-f-]{{36}}\\?oauth_id="));
        await Chromium.ScreenshotAsync(page, "connector-connected");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Reconnect account" })).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Run now" }).ClickAsync();
        await Expect(page.Locator("#execution-status")).ToHaveTextAsync("succeeded");
        await Expect(page.Locator("#execution-output")).ToContainTextAsync("Ada");
        var content = await page.ContentAsync();
        Assert.DoesNotContain(accessToken, content);
        Assert.DoesNotContain(clientSecret, content);
        Assert.True(page.ConsoleErrors().Count == 0, string.Join("\n", page.ConsoleErrors()));
        Assert.DoesNotContain(accessToken, server.LogText);
        Assert.DoesNotContain(clientSecret, server.LogText);
    }
}
