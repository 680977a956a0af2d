using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using Plugboard.Testing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Each official sync template, installed from the marketplace and synced against a loopback stub that answers as the
/// provider documents: its paths and parameters, its pagination, its auth header, its error shape and a 429 with
/// Retry-After (or the provider's own rate-limit answer) on the way.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class OfficialTemplateTests(PlugboardServer server)
{
    private const string Token = "provider-access-token-8c2f";

    private static readonly object OAuthClient = new { client_id = "app-client", client_secret = "app-secret-value", access_token = Token };

    /// <summary>Answers the first request of a kind with the provider's rate-limit response, then lets it through.</summary>
    private sealed class RateLimitOnce
    {
        private readonly ConcurrentDictionary<string, bool> _seen = new();

        public IResult? Check(string key, object body, int status = 429, bool retryAfter = true, HttpResponse? response = null)
        {
            if (!_seen.TryAdd(key, true))
            {
                return null;
            }
            if (retryAfter)
            {
                response!.Headers.RetryAfter = "1";
            }
            return Results.Json(body, statusCode: status);
        }
    }

    private static bool Authorized(HttpRequest request) => request.Headers.Authorization == "Bearer " + Token;

    private static IResult Unauthorized(object body) => Results.Json(body, statusCode: 401);

    private async Task<(TeamWorkspace Team, string ConnectorId)> InstallAsync(string slug, object? credentials, object config, TeamWorkspace? team = null)
    {
        team ??= await server.TeamAsync();
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = @slug AND workspace_id IS NULL", new { slug });
        var body = new Dictionary<string, object?> { ["workspace_id"] = team.Id, ["name"] = $"{slug} {Guid.NewGuid():N}"[..40], ["config"] = config };
        if (credentials is not null)
        {
            body["credentials"] = credentials;
        }
        var connector = await (await team.Admin.Http.PostAsJsonAsync($"/v1/templates/{templateId}/install", body)).AssertStatusAsync(201);
        return (team, connector.GetProperty("id").GetString()!);
    }

    private static async Task<JsonElement> SyncAsync(TeamWorkspace team, string connectorId, string expect = "completed")
    {
        var response = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { });
        await response.AssertStatusAsync(202);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var log = await (await team.Member.Http.GetAsync(response.Headers.Location)).AssertStatusAsync(200);
            if (log.GetProperty("status").GetString() is "completed" or "failed")
            {
                Assert.True(log.GetProperty("status").GetString() == expect, log.ToString());
                return log;
            }
            Assert.True(DateTime.UtcNow < deadline, "sync did not finish");
            await Task.Delay(50);
        }
    }

    private sealed record Doc(string ExternalId, string Title, string? ExternalUrl, string? ContentType, string? Content, string SourceMetadata, string ProcessingStatus,
        string? Error, string? Stream)
    {
        public JsonElement Metadata => JsonDocument.Parse(SourceMetadata).RootElement;
    }

    /// <summary>The connector's documents once the pipeline finished with each (downloads included).</summary>
    private async Task<Dictionary<string, Doc>> DocumentsAsync(string connectorId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            await using var connection = new NpgsqlConnection(server.Settings.OwnerConnectionString);
            var docs = (await connection.QueryAsync<Doc>(
                """
                SELECT external_id, title, external_url, content_type, content, source_metadata::text AS source_metadata, processing_status, error, stream
                  FROM imported_documents d
                 WHERE connector_id = @id AND NOT EXISTS (SELECT FROM jobs j WHERE j.kind = 'document' AND j.payload->>'documentId' = d.id::text)
                """, new { id = Guid.Parse(connectorId) })).ToList();
            var total = await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE connector_id = @id", new { id = Guid.Parse(connectorId) });
            if (docs.Count == total && docs.All(d => d.ProcessingStatus is "completed" or "failed"))
            {
                Assert.All(docs, d => Assert.True(d.ProcessingStatus == "completed", $"{d.ExternalId}: {d.Error}"));
                return docs.ToDictionary(d => d.ExternalId);
            }
            Assert.True(DateTime.UtcNow < deadline, "documents not processed");
            await Task.Delay(50);
        }
    }

    private async Task<string[]> SearchAsync(TeamWorkspace team, string connectorId, string q)
    {
        var hits = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q={Uri.EscapeDataString(q)}&connector_id={connectorId}")).AssertStatusAsync(200);
        var ids = new List<string>();
        foreach (var hit in hits.GetProperty("items").EnumerateArray())
        {
            ids.Add(await server.OwnerScalarAsync<string>("SELECT external_id FROM imported_documents WHERE id = @id", new { id = Guid.Parse(hit.GetProperty("document_id").GetString()!) }));
        }
        return [.. ids.Distinct()];
    }

    [Fact]
    public async Task Zoom_imports_the_vtt_transcript_of_each_recorded_meeting_across_pages_and_a_rate_limit()
    {
        var limit = new RateLimitOnce();
        string? lastFrom = null;
        Stub stub = null!;
        stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/v2/users/me/recordings", (HttpRequest request, HttpResponse response) =>
            {
                if (!Authorized(request))
                {
                    return Unauthorized(new { code = 124, message = "Invalid access token." });
                }
                lastFrom = request.Query["from"];
                Assert.Matches(@"^\d{4}-\d{2}-\d{2}$", lastFrom);
                object File(string id, string type, string ext) => new
                {
                    id,
                    meeting_id = "m",
                    recording_start = "2026-11-20T09:00:05Z",
                    file_type = type,
                    file_extension = ext,
                    file_size = 2048,
                    download_url = $"{stub.Url}/rec/download/{id}",
                    status = "completed",
                };
                if (request.Query["next_page_token"] == "page-2")
                {
                    return limit.Check("page-2", new { code = 429, message = "You have exceeded the per-second rate limit." }, response: response) ?? Results.Json(new
                    {
                        page_size = 300,
                        total_records = 3,
                        next_page_token = "",
                        meetings = new[] { new { uuid = "uuid-3==", id = 333, topic = "Design review", start_time = "2026-11-22T15:00:00Z", duration = 30,
                            share_url = "https://zoom.example/rec/share/3", recording_files = new[] { File("t3", "TRANSCRIPT", "VTT") } } },
                    });
                }
                return Results.Json(new
                {
                    page_size = 300,
                    total_records = 3,
                    next_page_token = "page-2",
                    meetings = new[]
                    {
                        new { uuid = "uuid-1==", id = 111, topic = "Quarterly planning", start_time = "2026-11-20T09:00:00Z", duration = 45,
                            share_url = "https://zoom.example/rec/share/1", recording_files = new[] { File("v1", "MP4", "MP4"), File("t1", "TRANSCRIPT", "VTT") } },
                        new { uuid = "uuid-2==", id = 222, topic = "No transcript here", start_time = "2026-11-21T09:00:00Z", duration = 10,
                            share_url = "https://zoom.example/rec/share/2", recording_files = new[] { File("v2", "MP4", "MP4") } },
                    },
                });
            });
            app.MapGet("/rec/download/{id}", (string id, HttpRequest request) => !Authorized(request)
                ? Unauthorized(new { code = 124, message = "Invalid access token." })
                : Results.Bytes(Encoding.UTF8.GetBytes(id == "t1"
                    ? "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.000\nAda Lovelace: Welcome to the quarterly planning of the albatross project.\n"
                    : "WEBVTT\n\n1\n00:00:02.000 --> 00:00:05.000\nGrace Hopper: The design review covers the periscope.\n"), "application/octet-stream"));
        });
        await using var _ = stub;
        var (team, connectorId) = await InstallAsync("zoom-recordings", OAuthClient, new { api_url = stub.Url + "/v2", oauth_url = stub.Url });

        var log = await SyncAsync(team, connectorId);
        Assert.Equal(2, log.GetProperty("records_fetched").GetInt32()); // the meeting without a transcript is not a record of the stream
        Assert.Equal(2, log.GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(["uuid-1==", "uuid-3=="], docs.Keys.Order());
        var planning = docs["uuid-1=="];
        Assert.Equal(("Quarterly planning", "https://zoom.example/rec/share/1", "text/vtt"), (planning.Title, planning.ExternalUrl, planning.ContentType));
        Assert.Equal(111, planning.Metadata.GetProperty("meeting_id").GetInt32());
        Assert.Equal(["uuid-1=="], await SearchAsync(team, connectorId, "albatross"));
        Assert.Equal("Ada Lovelace", await server.OwnerScalarAsync<string>(
            "SELECT c.speaker FROM document_chunks c JOIN imported_documents d ON d.id = c.document_id WHERE d.connector_id = @id AND d.external_id = 'uuid-1=='",
            new { id = Guid.Parse(connectorId) }));
        Assert.Equal(2, stub.Count("/v2/users/me/recordings") - 1); // the first page, and the second after its 429

        await SyncAsync(team, connectorId);
        Assert.Equal("2026-11-21", lastFrom); // the newest start time, a day of look-back earlier
    }

    [Fact]
    public async Task Teams_imports_each_transcript_of_the_organizers_meetings_following_the_next_link()
    {
        var limit = new RateLimitOnce();
        Stub stub = null!;
        stub = await Stub.StartAsync(app => app.MapGet("/v1.0/users/{user}/onlineMeetings/{**rest}", (string user, string rest, HttpRequest request, HttpResponse response) =>
        {
            if (!Authorized(request))
            {
                return Unauthorized(new { error = new { code = "InvalidAuthenticationToken", message = "Access token is empty." } });
            }
            if (rest.StartsWith("getAllTranscripts(", StringComparison.Ordinal))
            {
                Assert.StartsWith($"getAllTranscripts(meetingOrganizerUserId='{user}',startDateTime=", rest);
                object Transcript(string id, string meeting, string created) => new
                {
                    id,
                    meetingId = meeting,
                    callId = "call-" + id,
                    createdDateTime = created,
                    endDateTime = created,
                    transcriptContentUrl = $"{stub.Url}/v1.0/users/{user}/onlineMeetings/{meeting}/transcripts/{id}/content",
                    meetingOrganizer = new { user = new { id = user, displayName = "Grace Hopper" } },
                };
                if (request.Query["$skiptoken"] == "next")
                {
                    return limit.Check("next", new { error = new { code = "TooManyRequests", message = "Too many requests." } }, response: response)
                           ?? Results.Json(new Dictionary<string, object> { ["value"] = new[] { Transcript("tr-2", "meet-2", "2026-11-25T10:00:00Z") } });
                }
                return Results.Json(new Dictionary<string, object>
                {
                    ["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.callTranscript)",
                    ["value"] = new[] { Transcript("tr-1", "meet-1", "2026-11-24T10:00:00Z") },
                    ["@odata.nextLink"] = $"{stub.Url}/v1.0/users/{user}/onlineMeetings/{rest}?$skiptoken=next",
                });
            }
            if (rest.EndsWith("/content", StringComparison.Ordinal) && request.Query["$format"] == "text/vtt")
            {
                var text = rest.Contains("tr-1", StringComparison.Ordinal) ? "Let's review the lighthouse roadmap." : "The budget for the observatory is approved.";
                return Results.Text($"WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n<v Grace Hopper>{text}</v>\n", "text/vtt");
            }
            return Results.Json(new { error = new { code = "NotFound", message = "Not found." } }, statusCode: 404);
        }));
        await using var _ = stub;
        var (team, connectorId) = await InstallAsync("teams-transcripts", OAuthClient,
            new { user_id = "8b081ef6-4792-4def-b2c9-c363a1bf41d5", graph_url = stub.Url + "/v1.0", login_url = stub.Url });

        Assert.Equal(2, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(("text/vtt", "meet-1"), (docs["tr-1"].ContentType, docs["tr-1"].Metadata.GetProperty("meeting_id").GetString()));
        Assert.Equal("Teams meeting transcript, 2026-11-24 10:00 UTC", docs["tr-1"].Title);
        Assert.Equal(["tr-2"], await SearchAsync(team, connectorId, "observatory"));
    }

    /// <summary>Turns the installed connector's webhook on and stores (or generates) its secret, as its admin would.</summary>
    private static async Task<Hook> EnableWebhookAsync(TeamWorkspace team, string connectorId, string? providedSecret)
    {
        var connector = await (await team.Admin.Http.PatchAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}", new { webhook_active = true })).AssertStatusAsync(200);
        var secret = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/webhook/secret",
            providedSecret is null ? (object)new { } : new { secret = providedSecret })).AssertStatusAsync(200);
        return new Hook(team, connectorId, connector.GetProperty("webhook_url").GetString()!, providedSecret ?? secret.GetProperty("secret").GetString());
    }

    private static async Task<JsonElement> WebhookSyncAsync(Hook hook)
    {
        var events = await Webhooks.EventsAsync(hook);
        var processed = await Webhooks.ProcessedAsync(hook, Assert.Single(events).GetProperty("id").GetString()!);
        var location = $"/v1/workspaces/{hook.Team.Id}/connectors/{hook.ConnectorId}/syncs/{processed.GetProperty("result").GetProperty("sync_id").GetString()}";
        for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60); ; await Task.Delay(50))
        {
            var log = await (await hook.Team.Viewer.Http.GetAsync(location)).AssertStatusAsync(200);
            if (log.GetProperty("status").GetString() is "completed" or "failed")
            {
                Assert.True(log.GetProperty("status").GetString() == "completed", log.ToString());
                Assert.Equal("webhook", log.GetProperty("trigger").GetString());
                return log;
            }
            Assert.True(DateTime.UtcNow < deadline, "sync did not finish");
        }
    }

    [Fact]
    public async Task A_Zoom_recording_transcript_completed_event_imports_the_transcript_and_makes_it_searchable()
    {
        Stub stub = null!;
        stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/v2/users/me/recordings", (HttpRequest request) => !Authorized(request)
                ? Unauthorized(new { code = 124, message = "Invalid access token." })
                : Results.Json(new
                {
                    page_size = 300,
                    next_page_token = "",
                    meetings = new[]
                    {
                        new { uuid = "4444AAAiAAAAAiAiAiiAii==", id = 444, topic = "Harbour retrospective", start_time = "2026-11-28T09:00:00Z", duration = 30,
                            share_url = "https://zoom.example/rec/share/4", recording_files = new[] { new { id = "t4", file_type = "TRANSCRIPT", download_url = $"{stub.Url}/rec/download/t4" } } },
                    },
                }));
            app.MapGet("/rec/download/{id}", (HttpRequest request) => !Authorized(request)
                ? Unauthorized(new { code = 124, message = "Invalid access token." })
                : Results.Text("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nAda Lovelace: The lighthouse keeper's report comes first.\n", "text/vtt"));
        });
        await using var _ = stub;
        var (team, connectorId) = await InstallAsync("zoom-recordings", OAuthClient, new { api_url = stub.Url + "/v2", oauth_url = stub.Url });
        var hook = await EnableWebhookAsync(team, connectorId, "zoom-app-secret-token-5d1f");
        var anonymous = server.Client(null);

        // Zoom validates the endpoint first (and every 72 hours).
        var validation = await (await anonymous.SendAsync(Webhooks.Zoom(hook, """{"payload":{"plainToken":"Vc8IqsmTTVSW1r8o3OWyNw"},"event_ts":1764320000000,"event":"endpoint.url_validation"}""")))
            .AssertStatusAsync(200);
        Assert.Equal(Webhooks.Hex(System.Security.Cryptography.HMACSHA256.HashData(Encoding.UTF8.GetBytes(hook.Secret!), "Vc8IqsmTTVSW1r8o3OWyNw"u8.ToArray())),
            validation.GetProperty("encryptedToken").GetString());

        const string completed = """
            {"event":"recording.transcript_completed","event_ts":1764320400000,"payload":{"account_id":"acc","object":{"uuid":"4444AAAiAAAAAiAiAiiAii==","id":444,
             "topic":"Harbour retrospective","recording_files":[{"id":"t4","file_type":"TRANSCRIPT","download_url":"https://zoom.us/rec/download/t4"}]}}}
            """;
        await (await anonymous.SendAsync(Webhooks.Zoom(hook, completed))).AssertStatusAsync(200);
        var log = await WebhookSyncAsync(hook);
        Assert.Equal(1, log.GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal("Harbour retrospective", docs["4444AAAiAAAAAiAiAiiAii=="].Title);
        Assert.Equal(["4444AAAiAAAAAiAiAiiAii=="], await SearchAsync(team, connectorId, "lighthouse keeper"));
        var stored = Assert.Single(await Webhooks.EventsAsync(hook));
        Assert.Equal("recording.transcript_completed:4444AAAiAAAAAiAiAiiAii==:1764320400000", stored.GetProperty("external_id").GetString());
    }

    [Fact]
    public async Task A_Graph_callTranscript_notification_imports_the_transcript_and_makes_it_searchable()
    {
        Stub stub = null!;
        stub = await Stub.StartAsync(app => app.MapGet("/v1.0/users/{user}/onlineMeetings/{**rest}", (string user, string rest, HttpRequest request) =>
        {
            if (!Authorized(request))
            {
                return Unauthorized(new { error = new { code = "InvalidAuthenticationToken", message = "Access token is empty." } });
            }
            if (rest.StartsWith("getAllTranscripts(", StringComparison.Ordinal))
            {
                return Results.Json(new Dictionary<string, object>
                {
                    ["value"] = new[]
                    {
                        new
                        {
                            id = "tr-9", meetingId = "meet-9", callId = "call-9", createdDateTime = "2026-11-29T10:00:00Z", endDateTime = "2026-11-29T10:30:00Z",
                            transcriptContentUrl = $"{stub.Url}/v1.0/users/{user}/onlineMeetings/meet-9/transcripts/tr-9/content",
                            meetingOrganizer = new { user = new { id = user, displayName = "Grace Hopper" } },
                        },
                    },
                });
            }
            return rest.EndsWith("/content", StringComparison.Ordinal) && request.Query["$format"] == "text/vtt"
                ? Results.Text("WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n<v Grace Hopper>The planetarium opens in spring.</v>\n", "text/vtt")
                : Results.Json(new { error = new { code = "NotFound", message = "Not found." } }, statusCode: 404);
        }));
        await using var _ = stub;
        const string user = "8b081ef6-4792-4def-b2c9-c363a1bf41d5";
        var (team, connectorId) = await InstallAsync("teams-transcripts", OAuthClient, new { user_id = user, graph_url = stub.Url + "/v1.0", login_url = stub.Url });
        var hook = await EnableWebhookAsync(team, connectorId, null);
        var anonymous = server.Client(null);

        // Creating the subscription: Graph posts a validation token and expects it back as text/plain.
        var echo = await anonymous.SendAsync(new HttpRequestMessage(HttpMethod.Post, hook.Path + "?validationToken=" + Uri.EscapeDataString("Validation: Testing client application reachability for subscription Request-Id: 1")));
        Assert.Equal("Validation: Testing client application reachability for subscription Request-Id: 1", await echo.Content.ReadAsStringAsync());

        var notification = JsonSerializer.Serialize(new
        {
            value = new[]
            {
                new
                {
                    subscriptionId = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                    changeType = "created",
                    clientState = hook.Secret,
                    subscriptionExpirationDateTime = "2026-12-03T11:00:00Z",
                    resource = $"users('{user}')/onlineMeetings('meet-9')/transcripts('tr-9')",
                    resourceData = new Dictionary<string, string> { ["id"] = "tr-9", ["@odata.type"] = "#Microsoft.Graph.callTranscript" },
                    tenantId = "tenant-1",
                },
            },
        });
        await (await anonymous.SendAsync(Webhooks.Post(hook.Path, notification))).AssertStatusAsync(202);
        Assert.Equal(1, (await WebhookSyncAsync(hook)).GetProperty("records_created").GetInt32());
        await DocumentsAsync(connectorId);
        Assert.Equal(["tr-9"], await SearchAsync(team, connectorId, "planetarium"));
    }

    [Fact]
    public async Task Google_drive_exports_docs_as_text_downloads_pdf_and_docx_and_rides_out_a_user_rate_limit()
    {
        var limit = new RateLimitOnce();
        var queries = new ConcurrentQueue<string>();
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/drive/v3/files", (HttpRequest request, HttpResponse response) =>
            {
                if (!Authorized(request))
                {
                    return Unauthorized(new { error = new { code = 401, message = "Request had invalid authentication credentials." } });
                }
                queries.Enqueue(request.Query["q"].ToString());
                object File(string id, string name, string mime) => new { id, name, mimeType = mime, modifiedTime = "2026-11-1" + id[^1] + "T08:00:00.000Z", webViewLink = $"https://drive.example/{id}", version = "7" };
                if (request.Query["pageToken"] == "p2")
                {
                    return limit.Check("p2", new { error = new { code = 403, message = "User Rate Limit Exceeded", errors = new[] { new { domain = "usageLimits", reason = "userRateLimitExceeded" } } } },
                               status: 403, retryAfter: false)
                           ?? Results.Json(new { files = new[] { File("f3", "Lighthouses.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document") } });
                }
                return Results.Json(new
                {
                    nextPageToken = "p2",
                    files = new[] { File("f1", "Launch plan", "application/vnd.google-apps.document"), File("f2", "Figures.pdf", "application/pdf") },
                });
            });
            app.MapGet("/drive/v3/files/{id}/export", (string id, HttpRequest request) => Authorized(request) && request.Query["mimeType"] == "text/plain"
                ? Results.Text("Launch plan\n\nThe walrus launch happens in spring.", "text/plain")
                : Results.Json(new { error = new { code = 400, message = "Bad export." } }, statusCode: 400));
            app.MapGet("/drive/v3/files/{id}", (string id, HttpRequest request) => Authorized(request) && request.Query["alt"] == "media"
                ? Results.Bytes(id == "f2" ? SampleDocuments.Pdf(["Figures for the narwhal fleet"]) : SampleDocuments.Docx(), "application/octet-stream")
                : Results.Json(new { error = new { code = 404, message = "File not found." } }, statusCode: 404));
        });
        var (team, connectorId) = await InstallAsync("google-drive", OAuthClient, new { api_url = stub.Url, accounts_url = stub.Url, token_url = stub.Url + "/token" });

        Assert.Equal(3, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(("text/plain", "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            (docs["f1"].ContentType, docs["f2"].ContentType, docs["f3"].ContentType));
        Assert.Equal(("Launch plan", "https://drive.example/f1"), (docs["f1"].Title, docs["f1"].ExternalUrl));
        Assert.Equal(["f1"], await SearchAsync(team, connectorId, "walrus"));
        Assert.Equal(["f2"], await SearchAsync(team, connectorId, "narwhal"));
        Assert.Equal(["f3"], await SearchAsync(team, connectorId, "Fresnel"));
        Assert.DoesNotContain("modifiedTime", queries.First());

        await SyncAsync(team, connectorId);
        Assert.StartsWith("modifiedTime >= '2026-11-13T08:00:00.000Z' and trashed = false", queries.Last()); // >=: files of the same second are not skipped
    }

    [Fact]
    public async Task Notion_imports_each_page_with_its_blocks_as_text_through_cursor_pages_in_the_request_body()
    {
        var limit = new RateLimitOnce();
        var bodies = new ConcurrentQueue<string>();
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/v1/search", async (HttpRequest request, HttpResponse response) =>
            {
                if (!Authorized(request) || request.Headers["Notion-Version"] != "2022-06-28")
                {
                    return Results.Json(new { @object = "error", status = 400, code = "missing_version", message = "Notion-Version header failed validation." }, statusCode: 400);
                }
                var body = JsonDocument.Parse(await new StreamReader(request.Body).ReadToEndAsync()).RootElement;
                bodies.Enqueue(body.ToString());
                object Page(string id, string title, bool database) => new
                {
                    @object = "page",
                    id,
                    url = $"https://www.notion.so/{id}",
                    created_time = "2026-10-01T00:00:00.000Z",
                    last_edited_time = $"2026-11-0{id[^1]}T12:00:00.000Z",
                    properties = database
                        ? new Dictionary<string, object> { ["Name"] = new { id = "title", type = "title", title = new[] { new { plain_text = title } } } }
                        : new Dictionary<string, object> { ["title"] = new { id = "title", type = "title", title = new[] { new { plain_text = title } } } },
                };
                if (body.TryGetProperty("start_cursor", out var cursor) && cursor.GetString() == "c2")
                {
                    return limit.Check("c2", new { @object = "error", status = 429, code = "rate_limited", message = "You have been rate limited." }, response: response)
                           ?? Results.Json(new { @object = "list", results = new[] { Page("p3", "Meeting notes", true) }, has_more = false, next_cursor = (string?)null });
                }
                return Results.Json(new { @object = "list", results = new[] { Page("p1", "Roadmap", false), Page("p2", "Onboarding", false) }, has_more = true, next_cursor = "c2" });
            });
            app.MapGet("/v1/blocks/{id}/children", (string id, HttpRequest request) =>
            {
                object Block(string type, string text) => new Dictionary<string, object>
                {
                    ["object"] = "block",
                    ["id"] = Guid.NewGuid().ToString(),
                    ["type"] = type,
                    ["has_children"] = false,
                    [type] = new { rich_text = new[] { new { type = "text", plain_text = text } } },
                };
                return Results.Json(new
                {
                    @object = "list",
                    has_more = false,
                    next_cursor = (string?)null,
                    results = new[] { Block("heading_1", $"{id} heading"), Block("paragraph", $"The {id} paragraph mentions the kestrel."), Block("bulleted_list_item", $"{id} bullet") },
                });
            });
        });
        var (team, connectorId) = await InstallAsync("notion-pages", OAuthClient, new { api_url = stub.Url + "/v1" });

        Assert.Equal(3, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(("Roadmap", "Meeting notes"), (docs["p1"].Title, docs["p3"].Title));
        Assert.Equal("p2 heading\nThe p2 paragraph mentions the kestrel.\np2 bullet", docs["p2"].Content);
        Assert.Equal("https://www.notion.so/p1", docs["p1"].ExternalUrl);
        Assert.False(JsonDocument.Parse(bodies.First()).RootElement.TryGetProperty("start_cursor", out _), bodies.First());
        Assert.Equal(3, (await SearchAsync(team, connectorId, "kestrel")).Length);
    }

    [Fact]
    public async Task Slack_imports_channel_messages_and_threads_with_cursor_pages_and_fails_on_an_ok_false_answer()
    {
        var limit = new RateLimitOnce();
        var oldest = new ConcurrentQueue<string>();
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/api/conversations.history", (HttpRequest request, HttpResponse response) =>
            {
                if (!Authorized(request))
                {
                    return Results.Json(new { ok = false, error = "not_authed" });
                }
                if (request.Query["channel"] != "C0123")
                {
                    return Results.Json(new { ok = false, error = "channel_not_found" });
                }
                oldest.Enqueue(request.Query["oldest"].ToString());
                if (request.Query["cursor"] == "dXNlcjpVMDYxTkZUVDI=")
                {
                    return limit.Check("page-2", new { ok = false, error = "ratelimited" }, response: response) ?? Results.Json(new
                    {
                        ok = true,
                        has_more = false,
                        response_metadata = new { next_cursor = "" },
                        messages = new object[]
                        {
                            new { type = "message", user = "U3", text = "Lunch is at noon.", ts = "1764000000.000100", thread_ts = "1764000000.000100", reply_count = 2 },
                        },
                    });
                }
                return Results.Json(new
                {
                    ok = true,
                    has_more = true,
                    response_metadata = new { next_cursor = "dXNlcjpVMDYxTkZUVDI=" },
                    messages = new object[]
                    {
                        new { type = "message", user = "U1", text = "Who owns the pelican deploy?", ts = "1764000300.000200", thread_ts = "1764000300.000200", reply_count = 2 },
                        new { type = "message", user = "U2", text = "Standup moved to 10.", ts = "1764000200.000100" },
                    },
                });
            });
            app.MapGet("/api/conversations.replies", (HttpRequest request) => Results.Json(new
            {
                ok = true,
                has_more = false,
                messages = new object[]
                {
                    new { type = "message", user = "U1", text = "Who owns the pelican deploy?", ts = request.Query["ts"].ToString(), thread_ts = request.Query["ts"].ToString(), reply_count = 2 },
                    new { type = "message", user = "U2", text = "I do.", ts = "1764000400.000100", thread_ts = request.Query["ts"].ToString() },
                    new { type = "message", user = "U1", text = "Thanks!", ts = "1764000500.000100", thread_ts = request.Query["ts"].ToString() },
                },
            }));
        });
        var (team, connectorId) = await InstallAsync("slack-channel", OAuthClient, new { channel = "C0123", workspace_url = "https://acme.slack.com", api_url = stub.Url + "/api", oauth_url = stub.Url });

        Assert.Equal(5, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        // The thread on the second page is read too.
        Assert.Equal(["1764000000.000100", "1764000200.000100", "1764000300.000200", "thread-1764000000.000100", "thread-1764000300.000200"], docs.Keys.Order());
        Assert.Equal("https://acme.slack.com/archives/C0123/p1764000300000200", docs["1764000300.000200"].ExternalUrl);
        Assert.Equal("Who owns the pelican deploy?\n\nI do.\n\nThanks!", docs["thread-1764000300.000200"].Content);
        Assert.Equal("threads", docs["thread-1764000300.000200"].Stream);

        await SyncAsync(team, connectorId);
        Assert.Equal("1764000300.000200", oldest.Last()); // only newer messages are asked for

        var (otherTeam, broken) = await InstallAsync("slack-channel", OAuthClient, new { channel = "C404", workspace_url = "https://acme.slack.com", api_url = stub.Url + "/api", oauth_url = stub.Url });
        var failed = await SyncAsync(otherTeam, broken, expect: "failed");
        Assert.Contains("channel_not_found", failed.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Github_imports_issues_as_markdown_following_link_pages_and_asks_only_for_updates_since_the_cursor()
    {
        var limit = new RateLimitOnce();
        var since = new ConcurrentQueue<string>();
        Stub stub = null!;
        stub = await Stub.StartAsync(app => app.MapGet("/repos/acme/widgets/issues", (HttpRequest request, HttpResponse response) =>
        {
            if (!Authorized(request) || request.Headers.Accept != "application/vnd.github+json" || request.Headers["X-GitHub-Api-Version"] != "2022-11-28"
                || request.Headers.UserAgent.Count == 0)
            {
                return Results.Json(new { message = "Bad credentials", documentation_url = "https://docs.github.com/rest" }, statusCode: 401);
            }
            since.Enqueue(request.Query["since"].ToString());
            object Issue(int number, string title, bool pr) => new
            {
                id = 1000 + number,
                number,
                title,
                body = $"Body of {title}.",
                state = number == 2 ? "closed" : "open",
                html_url = $"https://github.example/acme/widgets/issues/{number}",
                updated_at = $"2026-11-2{number}T10:00:00Z",
                user = new { login = "octocat" },
                labels = new[] { new { name = "bug" }, new { name = "p1" } },
                pull_request = pr ? new { url = "https://api.github.example/pulls/" + number } : null,
            };
            if (request.Query["page"] == "2")
            {
                return limit.Check("page-2", new { message = "You have exceeded a secondary rate limit.", documentation_url = "https://docs.github.com/rest" }, response: response)
                       ?? Results.Json(new[] { Issue(3, "Add a zeppelin mode", true) });
            }
            // As GitHub does, the next page's URL keeps the request's own parameters.
            var next = $"{stub.Url}/repos/acme/widgets/issues{request.QueryString}&page=2";
            response.Headers["Link"] = $"<{next}>; rel=\"next\", <{next}>; rel=\"last\"";
            return Results.Json(new[] { Issue(1, "Crash on start", false), Issue(2, "Typo in docs", false) });
        }));
        await using var _ = stub;
        var (team, connectorId) = await InstallAsync("github-issues", OAuthClient, new { owner = "acme", repo = "widgets", api_url = stub.Url, github_url = stub.Url });

        Assert.Equal(3, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(("#1 Crash on start", "text/markdown", "# Crash on start\n\nBody of Crash on start."), (docs["1"].Title, docs["1"].ContentType, docs["1"].Content));
        Assert.Equal(("closed", "bug, p1", "octocat"), (docs["2"].Metadata.GetProperty("state").GetString(), docs["2"].Metadata.GetProperty("labels").GetString(),
            docs["2"].Metadata.GetProperty("author").GetString()));
        Assert.Equal("true", docs["3"].Metadata.GetProperty("pull_request").GetString());
        Assert.Equal("", since.First());

        await SyncAsync(team, connectorId);
        Assert.Equal("2026-11-23T09:59:00Z", since.Last()); // the newest update, a minute of look-back earlier
    }

    [Fact]
    public async Task The_generic_rest_template_imports_each_record_with_the_fields_its_config_names()
    {
        var limit = new RateLimitOnce();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/tickets", (HttpRequest request, HttpResponse response) =>
        {
            if (request.Headers["X-API-Key"] != "rest-key-6d1b")
            {
                return Results.Json(new { error = "unauthorized" }, statusCode: 401);
            }
            return limit.Check("first", new { error = "slow down" }, response: response) ?? (request.Query["offset"] == "0"
                ? Results.Json(new { data = new[] { new { key = "T-1", subject = "Printer on fire", changed = "2026-11-01T00:00:00Z" }, new { key = "T-2", subject = "Coffee machine", changed = "2026-11-02T00:00:00Z" } } })
                : Results.Json(new { data = Array.Empty<object>() }));
        }));
        var (team, connectorId) = await InstallAsync("generic-rest-api-key", new { api_key = "rest-key-6d1b" },
            new { base_url = stub.Url, records_path = "/tickets", id_field = "key", title_field = "subject", updated_field = "changed" });

        Assert.Equal(2, (await SyncAsync(team, connectorId)).GetProperty("records_created").GetInt32());
        var docs = await DocumentsAsync(connectorId);
        Assert.Equal(("Printer on fire", "application/json"), (docs["T-1"].Title, docs["T-1"].ContentType));
        Assert.Equal("Printer on fire", JsonDocument.Parse(docs["T-1"].Content!).RootElement.GetProperty("subject").GetString());
        Assert.Equal(["T-2"], await SearchAsync(team, connectorId, "coffee"));
    }

    [Theory]
    [InlineData("rss")]
    [InlineData("atom")]
    public async Task The_feed_template_imports_rss_items_and_atom_entries(string kind)
    {
        const string rss = """
            <?xml version="1.0" encoding="UTF-8"?>
            <rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
              <channel><title>Engineering blog</title>
                <item><title>Faster syncs</title><link>https://blog.example/faster</link><guid isPermaLink="true">https://blog.example/faster</guid>
                  <pubDate>Tue, 01 Dec 2026 09:00:00 GMT</pubDate><dc:creator>Ada</dc:creator>
                  <description>Short version.</description><content:encoded><![CDATA[<p>The <b>ocelot</b> engine is twice as fast.</p>]]></content:encoded></item>
                <item><title>Hello</title><link>https://blog.example/hello</link><guid>hello-1</guid><description>&lt;p&gt;Our first lemur post.&lt;/p&gt;</description></item>
              </channel>
            </rss>
            """;
        const string atom = """
            <feed xmlns="http://www.w3.org/2005/Atom"><title>Changelog</title>
              <entry><id>urn:uuid:e1</id><title type="text">Version 3</title><link rel="alternate" href="https://changes.example/3"/>
                <updated>2026-11-30T10:00:00Z</updated><author><name>Grace</name></author><summary>Adds the ocelot mode.</summary></entry>
            </feed>
            """;
        await using var stub = await Stub.StartAsync(app => app.MapGet("/feed", () => Results.Text(kind == "rss" ? rss : atom, kind == "rss" ? "application/rss+xml" : "application/atom+xml")));
        var (team, connectorId) = await InstallAsync("rss-feed", null, new { feed_url = stub.Url + "/feed" });

        await SyncAsync(team, connectorId);
        var docs = await DocumentsAsync(connectorId);
        if (kind == "rss")
        {
            Assert.Equal(["hello-1", "https://blog.example/faster"], docs.Keys.Order(StringComparer.Ordinal));
            var faster = docs["https://blog.example/faster"];
            Assert.Equal(("Faster syncs", "https://blog.example/faster", "text/html"), (faster.Title, faster.ExternalUrl, faster.ContentType));
            Assert.Equal(("Ada", "Tue, 01 Dec 2026 09:00:00 GMT"), (faster.Metadata.GetProperty("author").GetString(), faster.Metadata.GetProperty("published").GetString()));
            Assert.Equal(["https://blog.example/faster"], await SearchAsync(team, connectorId, "ocelot"));
            Assert.Equal(["hello-1"], await SearchAsync(team, connectorId, "lemur"));
        }
        else
        {
            var entry = Assert.Single(docs.Values);
            Assert.Equal(("urn:uuid:e1", "Version 3", "https://changes.example/3", "Grace"),
                (entry.ExternalId, entry.Title, entry.ExternalUrl, entry.Metadata.GetProperty("author").GetString()));
            Assert.Equal(["urn:uuid:e1"], await SearchAsync(team, connectorId, "ocelot"));
        }
    }
}
