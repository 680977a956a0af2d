using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Storage;
using Plugboard.Testing;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Streams whose documents are files (content_url): downloaded by the document job into the bucket, through the
/// engine's credential-host rules, typed by their bytes, refused as uploads are, and fetched again only when they change.</summary>
[Collection(ServerCollection.Name)]
public sealed class SyncFileTests(PlugboardServer server)
{
    private const string Token = "drive-token-5d1e9c";

    /// <summary>A file API: /files lists them; /download/{id} serves the bytes to the bearer token only.</summary>
    private sealed class Drive : IAsyncDisposable
    {
        public ConcurrentDictionary<string, (string Name, byte[] Bytes, string Modified, string? Host)> Files { get; } = new();
        public Stub Stub { get; private set; } = null!;

        public static async Task<Drive> StartAsync()
        {
            var drive = new Drive();
            drive.Stub = await Stub.StartAsync(app =>
            {
                app.MapGet("/files", () => Results.Json(new
                {
                    files = drive.Files.OrderBy(f => f.Key).Select(f => new
                    {
                        id = f.Key,
                        name = f.Value.Name,
                        modified = f.Value.Modified,
                        url = $"http://{f.Value.Host ?? "127.0.0.1"}:{drive.Stub.Port}/download/{f.Key}/{f.Value.Name}",
                    }),
                }));
                app.MapGet("/download/{id}/{name}", (string id, HttpRequest request) =>
                {
                    if (!drive.Files.TryGetValue(id, out var file) || id.StartsWith("missing", StringComparison.Ordinal))
                    {
                        return Results.Json(new { error = "not found" }, statusCode: 404);
                    }
                    if (file.Host is null && request.Headers.Authorization != "Bearer " + Token)
                    {
                        return Results.Json(new { error = "unauthorized" }, statusCode: 401);
                    }
                    return Results.Bytes(file.Bytes, "application/octet-stream");
                });
            });
            return drive;
        }

        public ValueTask DisposeAsync() => Stub.DisposeAsync();
    }

    private static object Manifest(string baseUrl) => new Dictionary<string, object?>
    {
        ["version"] = 1,
        ["base_url"] = baseUrl,
        ["auth"] = new { type = "bearer", token = "{{ credentials.token }}" },
        ["steps"] = new[] { new { id = "list", request = new { method = "GET", path = "/files" }, extract = new { files = "$.files" } } },
        ["streams"] = new[]
        {
            new
            {
                name = "files",
                records = "steps.list.files",
                primary_key = "{{ record.id }}",
                document = new { title = "{{ record.name }}", content_url = "{{ record.url }}", metadata = new { modified = "{{ record.modified }}" } },
            },
        },
    };

    private static async Task<string> ConnectorAsync(TeamWorkspace team, Drive drive)
    {
        var credential = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials",
            new { name = "drive-" + Guid.NewGuid().ToString("N")[..6], auth_type = "bearer", secret = new { token = Token } })).AssertStatusAsync(201);
        return (await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors", new
        {
            name = "drive-" + Guid.NewGuid().ToString("N")[..8],
            manifest = Manifest(drive.Stub.Url),
            credential_id = credential.GetProperty("id").GetString(),
        })).AssertStatusAsync(201)).GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> SyncAsync(TeamWorkspace team, string connectorId)
    {
        var response = await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{connectorId}/sync", new { });
        await response.AssertStatusAsync(202);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var log = await (await team.Member.Http.GetAsync(response.Headers.Location)).AssertStatusAsync(200);
            if (log.GetProperty("status").GetString() is "completed" or "failed")
            {
                Assert.True(log.GetProperty("status").GetString() == "completed", log.ToString());
                return log;
            }
            Assert.True(DateTime.UtcNow < deadline, "sync did not finish");
            await Task.Delay(50);
        }
    }

    private sealed record Doc(string ExternalId, string ProcessingStatus, string? ContentType, string? StoragePath, string? Error, long? FileSize);

    private async Task<Dictionary<string, Doc>> ProcessedAsync(string connectorId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            await using var connection = new Npgsql.NpgsqlConnection(server.Settings.OwnerConnectionString);
            var docs = (await Dapper.SqlMapper.QueryAsync<Doc>(connection,
                """
                SELECT external_id, processing_status, content_type, storage_path, error, file_size FROM imported_documents d
                 WHERE connector_id = @id AND NOT EXISTS (SELECT FROM jobs j WHERE j.kind = 'document' AND j.payload->>'documentId' = d.id::text)
                """, new { id = Guid.Parse(connectorId) })).ToList();
            var total = await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE connector_id = @id", new { id = Guid.Parse(connectorId) });
            if (docs.Count == total && docs.All(d => d.ProcessingStatus is "completed" or "failed"))
            {
                return docs.ToDictionary(d => d.ExternalId);
            }
            Assert.True(DateTime.UtcNow < deadline, "documents not processed: " + string.Join(", ", docs.Select(d => $"{d.ExternalId}={d.ProcessingStatus}")));
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Files_are_downloaded_with_the_connectors_auth_typed_by_their_bytes_searchable_and_fetched_again_only_when_changed()
    {
        await using var drive = await Drive.StartAsync();
        drive.Files["a"] = ("notes.md", Encoding.UTF8.GetBytes("# Launch notes\n\nThe marmalade rollout starts on Monday."), "2026-11-01T00:00:00Z", null);
        drive.Files["b"] = ("report.pdf", SampleDocuments.Pdf(["Quarterly figures for the zeppelin fleet"]), "2026-11-02T00:00:00Z", null);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, drive);

        var first = await SyncAsync(team, connectorId);
        Assert.Equal(2, first.GetProperty("records_created").GetInt32());
        var docs = await ProcessedAsync(connectorId);
        Assert.True(docs.Values.All(d => d.ProcessingStatus == "completed"), string.Join("; ", docs.Values.Select(d => d.Error)));
        Assert.Equal(("text/markdown", "application/pdf"), (docs["a"].ContentType, docs["b"].ContentType));
        Assert.All(docs.Values, d => Assert.StartsWith($"workspaces/{team.Id}/documents/", d.StoragePath));
        Assert.Equal(drive.Files["b"].Bytes.Length, docs["b"].FileSize);
        Assert.All(drive.Stub.Requests.Where(r => r.PathAndQuery.StartsWith("/download/", StringComparison.Ordinal)),
            r => Assert.Equal("Bearer " + Token, r.Headers["Authorization"]));
        foreach (var (word, id) in new[] { ("marmalade", "a"), ("zeppelin", "b") })
        {
            var hits = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q={word}")).AssertStatusAsync(200);
            var hit = Assert.Single(hits.GetProperty("items").EnumerateArray());
            Assert.Equal(id, await server.OwnerScalarAsync<string>("SELECT external_id FROM imported_documents WHERE id = @id",
                new { id = Guid.Parse(hit.GetProperty("document_id").GetString()!) }));
        }

        // Unchanged: nothing is fetched again. Changed (a new modified time): fetched into a new object, the old one deleted.
        var downloadsBefore = drive.Stub.Count("/download/a/notes.md");
        Assert.Equal(2, (await SyncAsync(team, connectorId)).GetProperty("records_unchanged").GetInt32());
        await ProcessedAsync(connectorId);
        Assert.Equal(downloadsBefore, drive.Stub.Count("/download/a/notes.md"));
        drive.Files["a"] = ("notes.md", Encoding.UTF8.GetBytes("# Launch notes\n\nThe rollout moved to Tuesday: quince instead."), "2026-11-05T00:00:00Z", null);
        Assert.Equal(1, (await SyncAsync(team, connectorId)).GetProperty("records_updated").GetInt32());
        var changed = await ProcessedAsync(connectorId);
        Assert.Equal(downloadsBefore + 1, drive.Stub.Count("/download/a/notes.md"));
        Assert.NotEqual(docs["a"].StoragePath, changed["a"].StoragePath);
        Assert.Null(await server.Service<IObjectStore>().OpenReadAsync(docs["a"].StoragePath!, CancellationToken.None));
        var quince = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/search?q=quince")).AssertStatusAsync(200);
        Assert.Single(quince.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_file_on_another_host_gets_no_credentials_and_refused_or_missing_files_fail_with_their_reason()
    {
        await using var drive = await Drive.StartAsync();
        drive.Files["elsewhere"] = ("public.txt", Encoding.UTF8.GetBytes("A public file about pelicans."), "2026-11-01T00:00:00Z", "localhost");
        drive.Files["tool"] = ("tool.txt", [0x4D, 0x5A, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00], "2026-11-01T00:00:00Z", null);
        drive.Files["big"] = ("big.txt", Encoding.UTF8.GetBytes(new string('x', 5 * 1024 * 1024)), "2026-11-01T00:00:00Z", null); // the tests' limit is 4 MiB
        drive.Files["missing"] = ("missing.txt", [], "2026-11-01T00:00:00Z", null);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, drive);
        await SyncAsync(team, connectorId);
        var docs = await ProcessedAsync(connectorId);

        Assert.Equal("completed", docs["elsewhere"].ProcessingStatus);
        var elsewhere = drive.Stub.Requests.Single(r => r.PathAndQuery.StartsWith("/download/elsewhere", StringComparison.Ordinal));
        Assert.False(elsewhere.Headers.ContainsKey("Authorization"));
        Assert.Equal("failed", docs["big"].ProcessingStatus);
        Assert.Contains("limit", docs["big"].Error);
        Assert.Null(docs["big"].StoragePath);
        Assert.Equal("failed", docs["tool"].ProcessingStatus);
        Assert.Contains("executable", docs["tool"].Error);
        Assert.Equal("failed", docs["missing"].ProcessingStatus);
        Assert.Contains("HTTP 404", docs["missing"].Error);
        Assert.Equal(1, drive.Stub.Count("/download/missing/missing.txt")); // a 404 is not retried
        Assert.Equal(0L, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.DoesNotContain(Token, string.Join(" ", docs.Values.Select(d => d.Error)));
    }

    [Fact]
    public async Task A_downloaded_file_whose_intent_the_sweeper_marked_meanwhile_is_not_recorded_and_its_object_goes()
    {
        await using var drive = await Drive.StartAsync();
        drive.Files["a"] = ("swept.md", Encoding.UTF8.GetBytes("# Swept\n\nThe sweeper looked while this was stored."), "2026-11-01T00:00:00Z", null);
        var team = await server.TeamAsync();
        var connectorId = await ConnectorAsync(team, drive);
        await SyncAsync(team, connectorId);
        var first = (await ProcessedAsync(connectorId))["a"];
        Assert.Equal("completed", first.ProcessingStatus);
        var documentId = await server.OwnerScalarAsync<Guid>("SELECT id FROM imported_documents WHERE connector_id = @id", new { id = Guid.Parse(connectorId) });
        // The file is to be fetched again (as after a change), and the sweeper marks the new object's intent while it is stored.
        await server.OwnerExecuteAsync("UPDATE imported_documents SET storage_path = NULL WHERE id = @documentId", new { documentId });
        await server.Service<IObjectStore>().DeleteAsync(first.StoragePath!, CancellationToken.None);
        var store = new IntentMarkedWhileStoring(server.Service<IObjectStore>(), server.Settings.OwnerConnectionString);
        var handler = server.Create<Plugboard.Features.Documents.DocumentJobHandler>(store, server.Create<Plugboard.Features.Documents.SyncedFileDownloader>(store));
        var job = new Plugboard.Jobs.ClaimedJob(Guid.CreateVersion7(), "document", team.Id, JsonSerializer.SerializeToElement(new { workspaceId = team.Id, documentId, force = true }),
            null, 0, 1, 5, "test-worker", DateTime.UtcNow.AddMinutes(5), DateTime.UtcNow);

        var failure = await Assert.ThrowsAsync<IOException>(() =>
            handler.HandleAsync(job, new Plugboard.Jobs.JobContext(server.Service<Plugboard.Jobs.JobQueue>(), job), CancellationToken.None));

        Assert.Contains("downloaded again", failure.Message, StringComparison.Ordinal);
        Assert.NotNull(store.Marked);
        Assert.Null(await server.OwnerScalarAsync<string>("SELECT storage_path FROM imported_documents WHERE id = @documentId", new { documentId }));
        Assert.Null(await server.Service<IObjectStore>().OpenReadAsync(store.Marked, CancellationToken.None));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id }));
    }

    /// <summary>The real store, except that each object's intent is marked by the sweeper right after the object is stored.</summary>
    private sealed class IntentMarkedWhileStoring(IObjectStore inner, string ownerConnectionString) : ForwardingObjectStore(inner)
    {
        public string? Marked;

        public override async Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
        {
            await Inner.PutFileAsync(key, path, contentType, ct);
            await using var connection = new Npgsql.NpgsqlConnection(ownerConnectionString);
            await connection.OpenAsync(ct);
            await using var mark = new Npgsql.NpgsqlCommand("UPDATE pending_objects SET swept_at = now() WHERE object_key = $1", connection) { Parameters = { new() { Value = key } } };
            Assert.Equal(1, await mark.ExecuteNonQueryAsync(ct));
            Marked = key;
        }
    }
}
