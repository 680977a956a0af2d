using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Upload batches: exact counters under concurrency, completion when every file is through, failures with reasons, live progress.</summary>
[Collection(ServerCollection.Name)]
public sealed class BatchTests(PlugboardServer server)
{
    private static async Task<Guid> CreateBatchAsync(Actor actor, string workspaceId, int? expected)
    {
        var body = await (await actor.Http.PostAsJsonAsync($"/v1/workspaces/{workspaceId}/uploads/batches", expected is null ? new { } : (object)new { expected_files = expected }))
            .AssertStatusAsync(201);
        return body.GetProperty("id").GetGuid();
    }

    [Fact]
    public async Task A_batch_completes_when_every_file_is_processed_or_failed_and_lists_each_failure()
    {
        var team = await server.TeamAsync();
        var batchId = await CreateBatchAsync(team.Member, team.Id, 6);
        var files = new (string Name, byte[] Bytes, string? Type)[]
        {
            ("one.md", "# One\n\nThe first lantern."u8.ToArray(), null),
            ("two.md", "# Two\n\nThe second lantern."u8.ToArray(), null),
            ("three.txt", "third lantern text"u8.ToArray(), null),
            ("three-again.txt", "third lantern text"u8.ToArray(), null), // a duplicate counts as processed
            ("tool.pdf", File.ReadAllBytes("/bin/true"), "application/pdf"), // refused at upload
            ("locked.pdf", SampleDocuments.EncryptedPdf(), "application/pdf"), // fails in the pipeline
        };
        // Several in parallel, as a client uploads a folder.
        var responses = await Task.WhenAll(files.Select(f => team.Member.Http.UploadAsync(team.Id, f.Name, f.Bytes, f.Type, batchId)));
        Assert.All(responses, r => Assert.True((int)r.StatusCode is 200 or 201 or 415, r.StatusCode.ToString()));

        var batch = await team.Viewer.Http.BatchSettledAsync(team.Id, batchId);
        Assert.Equal("completed_with_errors", batch.GetProperty("status").GetString());
        Assert.Equal(6, batch.GetProperty("received_files").GetInt32());
        Assert.Equal(4, batch.GetProperty("processed_files").GetInt32());
        Assert.Equal(2, batch.GetProperty("failed_files").GetInt32());
        Assert.NotEqual(JsonValueKind.Null, batch.GetProperty("completed_at").ValueKind);
        var failures = batch.GetProperty("failures").EnumerateArray().ToDictionary(f => f.GetProperty("file_name").GetString()!, f => f);
        Assert.Contains("executable", failures["tool.pdf"].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("encrypted", failures["locked.pdf"].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.String, failures["locked.pdf"].GetProperty("document_id").ValueKind);

        var listed = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents?batch_id={batchId}")).AssertStatusAsync(200);
        Assert.Equal(4, listed.GetProperty("items").GetArrayLength()); // three new documents and the encrypted one; the duplicate is the third's
        var late = await (await team.Member.Http.UploadAsync(team.Id, "late.txt", "too late", batchId: batchId)).AssertProblemAsync(409);
        Assert.Contains("create a new batch", late.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// The order of locks an upload into a batch takes matches a document job's (its document, then its batch): a
    /// transaction holding a document of the same bytes that then locks the batch row — as a job completing such a
    /// document does — and an upload of those bytes into the batch both go through, where taking the batch row first
    /// deadlocked (answered 409 concurrent-update).
    /// </summary>
    [Fact]
    public async Task A_duplicate_upload_waiting_on_the_same_bytes_never_holds_the_batch_row_meanwhile()
    {
        var team = await server.TeamAsync();
        var batchId = await CreateBatchAsync(team.Member, team.Id, 2);
        var bytes = "the same ferry timetable"u8.ToArray();
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        await using var other = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        await other.OpenAsync();
        await using var tx = await other.BeginTransactionAsync();
        var documentId = Guid.CreateVersion7();
        await other.ExecuteAsync(
            "INSERT INTO imported_documents (workspace_id, id, source, title, content_hash, processing_status) VALUES (@ws, @documentId, 'upload', 'ferry', @hash, 'completed')",
            new { ws = team.Id, documentId, hash }, tx);

        var upload = team.Member.Http.UploadAsync(team.Id, "ferry.txt", bytes, null, batchId);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (await server.OwnerScalarAsync<long>(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> @pid", new { pid = other.ProcessID }) == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the upload never waited on the same bytes");
            await Task.Delay(20);
        }
        await other.ExecuteAsync("SELECT 1 FROM file_upload_batches WHERE id = @batchId FOR UPDATE", new { batchId }, tx, commandTimeout: 10);
        await tx.CommitAsync();

        var answer = await (await upload).AssertStatusAsync(200);
        Assert.Equal(("duplicate", documentId), (answer.GetProperty("files")[0].GetProperty("outcome").GetString(), answer.GetProperty("files")[0].GetProperty("document_id").GetGuid()));
        var batch = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}")).AssertStatusAsync(200);
        Assert.Equal((1, 1), (batch.GetProperty("received_files").GetInt32(), batch.GetProperty("processed_files").GetInt32()));
    }

    [Fact]
    public async Task An_open_batch_grows_with_its_files_and_completes_once_closed()
    {
        var team = await server.TeamAsync();
        var batchId = await CreateBatchAsync(team.Member, team.Id, null);
        var first = await (await team.Member.Http.UploadAsync(team.Id, "a.txt", "alpha words", batchId: batchId)).AssertStatusAsync(201);
        await (await team.Member.Http.UploadAsync(team.Id, "b.txt", "beta words", batchId: batchId)).AssertStatusAsync(201);
        await team.Member.Http.SettledAsync(team.Id, first.GetProperty("files")[0].GetProperty("document_id").GetGuid());
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(50))
        {
            var open = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}")).AssertStatusAsync(200);
            Assert.True(open.GetProperty("is_open").GetBoolean());
            Assert.Equal("processing", open.GetProperty("status").GetString()); // never complete while more files may come
            Assert.Equal(2, open.GetProperty("total_files").GetInt32());
            if (open.GetProperty("processed_files").GetInt32() == 2)
            {
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, open.ToString());
        }
        await (await team.Viewer.Http.PostAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}/close", null)).AssertProblemAsync(403);
        var closed = await (await team.Member.Http.PostAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}/close", null)).AssertStatusAsync(200);
        Assert.False(closed.GetProperty("is_open").GetBoolean());
        Assert.Equal("completed", closed.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Counters_stay_exact_under_many_concurrent_workers()
    {
        var team = await server.TeamAsync();
        const int files = 400;
        var batchId = await CreateBatchAsync(team.Member, team.Id, files);
        var outcomes = Enumerable.Range(0, files).Select(i => i % 7 == 0).ToArray();
        var failedWanted = outcomes.Count(f => f);
        var completions = 0;
        // 16 workers, each its own service-role connection, racing through the same batch.
        await Parallel.ForEachAsync(Enumerable.Range(0, files), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            await using var connection = new NpgsqlConnection(server.Settings.ServiceConnectionString);
            await connection.OpenAsync(ct);
            var status = await connection.ExecuteScalarAsync<string>(
                outcomes[i] ? "SELECT status FROM increment_batch_failed(@batchId)" : "SELECT status FROM increment_batch_processed(@batchId)", new { batchId });
            if (status is "completed" or "completed_with_errors")
            {
                Interlocked.Increment(ref completions);
            }
        });
        var batch = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}")).AssertStatusAsync(200);
        Assert.Equal(files - failedWanted, batch.GetProperty("processed_files").GetInt32());
        Assert.Equal(failedWanted, batch.GetProperty("failed_files").GetInt32());
        Assert.Equal("completed_with_errors", batch.GetProperty("status").GetString());
        Assert.Equal(1, completions); // exactly one update saw the batch complete
    }

    [Fact]
    public async Task Progress_streams_as_server_sent_events_until_the_batch_ends()
    {
        var team = await server.TeamAsync();
        var batchId = await CreateBatchAsync(team.Member, team.Id, 2);
        // A client of its own: the shared ones buffer each response to record it, which a stream never ends.
        using var streaming = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        streaming.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", team.Viewer.Key);
        using var stream = await streaming.GetStreamAsync($"/v1/workspaces/{team.Id}/uploads/batches/{batchId}/stream");
        using var reader = new StreamReader(stream);
        var uploads = Task.Run(async () =>
        {
            await team.Member.Http.UploadAsync(team.Id, "s1.txt", "streamed one", batchId: batchId);
            await team.Member.Http.UploadAsync(team.Id, "s2.txt", "streamed two", batchId: batchId);
        });
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
                events.Add((name!, JsonDocument.Parse(line[6..]).RootElement.Clone()));
                if (name == "end")
                {
                    break;
                }
            }
        }
        await uploads;
        Assert.Contains(events, e => e.Event == "progress");
        var end = Assert.Single(events, e => e.Event == "end").Data;
        Assert.Equal("completed", end.GetProperty("status").GetString());
        Assert.Equal(2, end.GetProperty("processed_files").GetInt32());
    }

    [Fact]
    public async Task Batches_check_their_input_roles_and_workspace()
    {
        var team = await server.TeamAsync();
        var other = await server.TeamAsync();
        await (await team.Member.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/uploads/batches", new { expected_files = 0 })).AssertProblemAsync(422);
        await (await team.Member.Http.PostAsync($"/v1/workspaces/{team.Id}/uploads/batches", HttpAssertions.RawJson("""{"expected_files": "many"}"""))).AssertProblemAsync(400);
        await (await team.Viewer.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/uploads/batches", new { expected_files = 1 })).AssertProblemAsync(403);
        var batchId = await CreateBatchAsync(team.Member, team.Id, 1);
        await (await other.Owner.Http.GetAsync($"/v1/workspaces/{other.Id}/uploads/batches/{batchId}")).AssertProblemAsync(404);
        await (await other.Owner.Http.UploadAsync(other.Id, "x.txt", "x", batchId: batchId)).AssertProblemAsync(404);
        var list = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/uploads/batches")).AssertStatusAsync(200);
        Assert.Single(list.GetProperty("items").EnumerateArray());
    }
}
