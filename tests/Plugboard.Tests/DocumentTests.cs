using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Plugboard.Features.Documents;
using Plugboard.Storage;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Uploads through the API: stored and recorded or refused with a reason, processed into chunks, read back, deleted and restored.</summary>
[Collection(ServerCollection.Name)]
public sealed class DocumentTests(PlugboardServer server)
{
    private const string Guide =
        """
        # Lighthouse keeping

        Keepers trimmed the wicks and polished the Fresnel lens every evening.

        ## Fog

        When fog rolled in, the keeper sounded the horn every thirty seconds.
        """;

    [Fact]
    public async Task An_uploaded_file_is_stored_processed_into_chunks_and_downloadable()
    {
        var team = await server.TeamAsync();
        var id = await team.Member.Http.AcceptedAsync(team.Id, "keeping.md", Guide);
        var document = await team.Viewer.Http.SettledAsync(team.Id, id);
        Assert.Equal("completed", document.GetProperty("processing_status").GetString());
        Assert.Equal("upload", document.GetProperty("source").GetString());
        Assert.Equal("Lighthouse keeping", document.GetProperty("title").GetString());
        Assert.Equal("keeping.md", document.GetProperty("file_name").GetString());
        Assert.Equal(MediaTypes.Markdown, document.GetProperty("content_type").GetString());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Guide))), document.GetProperty("content_hash").GetString());
        Assert.True(document.GetProperty("chunks_generated").GetBoolean());
        var count = document.GetProperty("chunk_count").GetInt32();
        Assert.True(count >= 2, "two sections make two chunks");

        var chunks = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents/{id}/chunks")).AssertStatusAsync(200);
        var items = chunks.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(count, items.Count);
        var fog = Assert.Single(items, c => c.GetProperty("content").GetString()!.Contains("horn", StringComparison.Ordinal));
        Assert.Equal(["Lighthouse keeping", "Fog"], fog.GetProperty("heading_path").EnumerateArray().Select(h => h.GetString()));

        var download = await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents/{id}/content");
        Assert.Equal(200, (int)download.StatusCode);
        Assert.Equal(Guide, await download.Content.ReadAsStringAsync());
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        Assert.Equal("nosniff", download.Headers.GetValues("X-Content-Type-Options").Single());

        var stored = await server.OwnerScalarAsync<string>("SELECT storage_path FROM imported_documents WHERE id = @id", new { id });
        Assert.Equal($"workspaces/{team.Id}/documents/{id:N}", stored);
    }

    [Fact]
    public async Task The_same_bytes_uploaded_again_are_a_duplicate_of_the_first_document()
    {
        var team = await server.TeamAsync();
        var id = await team.Member.Http.AcceptedAsync(team.Id, "a.txt", "the same words twice");
        var again = await (await team.Member.Http.UploadAsync(team.Id, "copy.txt", "the same words twice")).AssertStatusAsync(200);
        var file = again.GetProperty("files")[0];
        Assert.Equal("duplicate", file.GetProperty("outcome").GetString());
        Assert.Equal(id, file.GetProperty("document_id").GetGuid());
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));

        // Concurrent uploads of one new file record it once.
        var racers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => team.Member.Http.UploadAsync(team.Id, "race.txt", "raced bytes")));
        var outcomes = await Task.WhenAll(racers.Select(async r => (await r.ReadJsonAsync()).GetProperty("files")[0]));
        Assert.Single(outcomes, o => o.GetProperty("outcome").GetString() == "accepted");
        Assert.Single(outcomes.Select(o => o.GetProperty("document_id").GetGuid()).Distinct());
        Assert.Equal(2, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id }));
        var objects = Directory.GetFiles(Path.Combine(server.TestHome, "objects", "workspaces", team.Id, "documents"));
        Assert.Equal(2, objects.Length); // the losers' objects were removed
    }

    [Fact]
    public async Task An_upload_whose_intent_the_sweeper_took_meanwhile_is_refused_and_records_nothing()
    {
        var team = await server.TeamAsync();
        // The sweeper judges an upload abandoned between the object's intent and its record: here it removes the
        // intent while the object is being stored.
        var store = new IntentSweptWhileStoring(server.Service<IObjectStore>(), server.Settings.OwnerConnectionString);
        var uploads = new DocumentUploads(server.Service<Plugboard.Data.Db>(), server.Service<BucketSettings>(), store,
            server.Service<DocumentPipelineOptions>(), Microsoft.Extensions.Logging.Abstractions.NullLogger<DocumentUploads>.Instance);
        var context = new Plugboard.Data.WorkspaceContext(team.Id, team.Member.UserId, "member");

        var file = await uploads.ReceiveAsync(context, null, new MemoryStream("words the sweeper raced"u8.ToArray()), "slow.txt", "text/plain", CancellationToken.None);

        Assert.Equal((UploadedFile.Refused, 408), (file.Outcome, file.RefusalStatus));
        Assert.Contains("upload the file again", file.Reason, StringComparison.Ordinal);
        Assert.Equal(1, store.Swept);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE workspace_id = @ws AND kind = 'document'", new { ws = team.Id }));
        // The object stored after the sweeper looked is removed too: nothing else would ever remove it.
        var objects = Path.Combine(server.TestHome, "objects", "workspaces", team.Id, "documents");
        Assert.Empty(Directory.Exists(objects) ? Directory.GetFiles(objects) : []);

        // The same bytes again, with nothing in the way, are accepted (nothing of the first attempt counts as a duplicate).
        var again = await uploads.ReceiveAsync(context, null, new MemoryStream("words the sweeper raced"u8.ToArray()), "slow.txt", "text/plain", CancellationToken.None);
        Assert.Equal(UploadedFile.Accepted, again.Outcome);
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
    }

    /// <summary>The real store, except that the first object stored loses its intent row first, as the sweeper removes it.</summary>
    private sealed class IntentSweptWhileStoring(IObjectStore inner, string ownerConnectionString) : ForwardingObjectStore(inner)
    {
        public int Swept;

        public override async Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
        {
            if (Interlocked.CompareExchange(ref Swept, 1, 0) == 0)
            {
                await using var connection = new Npgsql.NpgsqlConnection(ownerConnectionString);
                await connection.OpenAsync(ct);
                await using var delete = new Npgsql.NpgsqlCommand("DELETE FROM pending_objects WHERE object_key = $1", connection) { Parameters = { new() { Value = key } } };
                Assert.Equal(1, await delete.ExecuteNonQueryAsync(ct));
            }
            await Inner.PutFileAsync(key, path, contentType, ct);
        }

        public bool FailDeletes;

        public override Task DeleteAsync(string key, CancellationToken ct) =>
            FailDeletes ? throw new IOException("The store refused the delete.") : Inner.DeleteAsync(key, ct);
    }

    [Fact]
    public async Task A_document_job_whose_payload_names_another_workspace_is_refused_and_touches_nothing()
    {
        var team = await server.TeamAsync();
        var other = await server.TeamAsync();
        var id = await other.Member.Http.AcceptedAsync(other.Id, "theirs.txt", "another workspace's words");
        await other.Member.Http.SettledAsync(other.Id, id);
        var before = await server.OwnerScalarAsync<DateTime>("SELECT updated_at FROM imported_documents WHERE id = @id", new { id });
        // A job row of this workspace (all the API role can insert) whose payload points at the other's document.
        var job = new Plugboard.Jobs.ClaimedJob(Guid.CreateVersion7(), "document", team.Id,
            JsonSerializer.SerializeToElement(new { workspaceId = other.Id, documentId = id, force = true }), null, 0, 1, 5, "test-worker", DateTime.UtcNow.AddMinutes(5), DateTime.UtcNow);

        var refused = await Assert.ThrowsAsync<Plugboard.Jobs.PermanentJobFailure>(() => server.Create<DocumentJobHandler>()
            .HandleAsync(job, new Plugboard.Jobs.JobContext(server.Service<Plugboard.Jobs.JobQueue>(), job), CancellationToken.None));

        Assert.Contains("another workspace", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await server.OwnerScalarAsync<DateTime>("SELECT updated_at FROM imported_documents WHERE id = @id", new { id }));
    }

    [Fact]
    public async Task A_swept_upload_whose_object_cannot_be_deleted_keeps_an_intent_so_the_sweeper_removes_it_later()
    {
        var team = await server.TeamAsync();
        var store = new IntentSweptWhileStoring(server.Service<IObjectStore>(), server.Settings.OwnerConnectionString) { FailDeletes = true };
        var uploads = new DocumentUploads(server.Service<Plugboard.Data.Db>(), server.Service<BucketSettings>(), store,
            server.Service<DocumentPipelineOptions>(), Microsoft.Extensions.Logging.Abstractions.NullLogger<DocumentUploads>.Instance);
        var context = new Plugboard.Data.WorkspaceContext(team.Id, team.Member.UserId, "member");

        var file = await uploads.ReceiveAsync(context, null, new MemoryStream("an object the store keeps"u8.ToArray()), "kept.txt", "text/plain", CancellationToken.None);

        Assert.Equal((UploadedFile.Refused, 408), (file.Outcome, file.RefusalStatus));
        var objects = Path.Combine(server.TestHome, "objects", "workspaces", team.Id, "documents");
        var left = Assert.Single(Directory.GetFiles(objects));
        // The object could not be deleted, so it has an intent again: the sweeper's to remove.
        var key = await server.OwnerScalarAsync<string>("SELECT object_key FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id });
        Assert.EndsWith(Path.GetFileName(left), key, StringComparison.Ordinal);
        await server.OwnerExecuteAsync("UPDATE pending_objects SET created_at = now() - interval '7 hours' WHERE object_key = @key", new { key });
        Assert.True(await server.Service<ObjectSweeper>().SweepAsync(TimeSpan.FromHours(6), CancellationToken.None) >= 1);
        Assert.Empty(Directory.GetFiles(objects));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id }));
    }

    [Fact]
    public async Task A_sweep_whose_delete_failed_after_removing_the_object_lets_no_upload_record_under_its_intent()
    {
        var team = await server.TeamAsync();
        var db = server.Service<Plugboard.Data.Db>();
        var store = new SweptAmbiguouslyWhileStoring(server.Service<IObjectStore>(), server.Settings.OwnerConnectionString, db, server.Service<DocumentPipelineOptions>());
        var uploads = new DocumentUploads(db, server.Service<BucketSettings>(), store,
            server.Service<DocumentPipelineOptions>(), Microsoft.Extensions.Logging.Abstractions.NullLogger<DocumentUploads>.Instance);
        var context = new Plugboard.Data.WorkspaceContext(team.Id, team.Member.UserId, "member");

        var file = await uploads.ReceiveAsync(context, null, new MemoryStream("bytes a timed-out delete removed"u8.ToArray()), "gone.txt", "text/plain", CancellationToken.None);

        // The sweep deleted the object, then failed (as a delete that times out after the store acted does): it counted
        // nothing and left the intent marked, and the upload waiting to record under it recorded nothing.
        Assert.Equal((0, true), (store.SweptObjects, store.MarkedAfterSweep));
        Assert.Equal((UploadedFile.Refused, 408), (file.Outcome, file.RefusalStatus));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE workspace_id = @ws AND kind = 'document'", new { ws = team.Id }));
        var objects = Path.Combine(server.TestHome, "objects", "workspaces", team.Id, "documents");
        Assert.Empty(Directory.Exists(objects) ? Directory.GetFiles(objects) : []);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE workspace_id = @ws", new { ws = team.Id }));
    }

    /// <summary>The real store, except that while the first object is stored a sweeper (whose deletes remove the object
    /// and then fail) judges the upload abandoned.</summary>
    private sealed class SweptAmbiguouslyWhileStoring(IObjectStore inner, string ownerConnectionString, Plugboard.Data.Db db, DocumentPipelineOptions pipeline) : ForwardingObjectStore(inner)
    {
        public int SweptObjects = -1;
        public bool MarkedAfterSweep;

        public override async Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
        {
            await Inner.PutFileAsync(key, path, contentType, ct);
            if (SweptObjects >= 0)
            {
                return;
            }
            await using var connection = new Npgsql.NpgsqlConnection(ownerConnectionString);
            await connection.OpenAsync(ct);
            await using var age = new Npgsql.NpgsqlCommand("UPDATE pending_objects SET created_at = now() - interval '7 hours' WHERE object_key = $1", connection)
            {
                Parameters = { new() { Value = key } },
            };
            Assert.Equal(1, await age.ExecuteNonQueryAsync(ct));
            var sweeper = new ObjectSweeper(db, new DeletesThenFails(Inner), pipeline, new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build(),
                Microsoft.Extensions.Logging.Abstractions.NullLogger<ObjectSweeper>.Instance);
            SweptObjects = await sweeper.SweepAsync(TimeSpan.FromHours(6), ct);
            Assert.Null(await Inner.OpenReadAsync(key, ct));
            await using var marked = new Npgsql.NpgsqlCommand("SELECT swept_at IS NOT NULL FROM pending_objects WHERE object_key = $1", connection)
            {
                Parameters = { new() { Value = key } },
            };
            MarkedAfterSweep = await marked.ExecuteScalarAsync(ct) is true;
        }
    }

    private sealed class DeletesThenFails(IObjectStore inner) : ForwardingObjectStore(inner)
    {
        public override async Task DeleteAsync(string key, CancellationToken ct)
        {
            await Inner.DeleteAsync(key, ct);
            throw new TimeoutException("The delete timed out (after the store had removed the object).");
        }
    }

    [Fact]
    public async Task Refused_files_get_a_problem_that_says_why_and_leave_nothing_behind()
    {
        var team = await server.TeamAsync();
        var executable = await (await team.Member.Http.UploadAsync(team.Id, "invoice.pdf", File.ReadAllBytes("/bin/true"), "application/pdf")).AssertProblemAsync(415);
        Assert.Contains("executable", executable.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var spoofed = await (await team.Member.Http.UploadAsync(team.Id, "notes.txt", SampleDocuments.Pdf(["hello"]), "text/plain")).AssertProblemAsync(415);
        var detail = spoofed.GetProperty("detail").GetString()!;
        Assert.Contains("text/plain", detail, StringComparison.Ordinal);
        Assert.Contains("application/pdf", detail, StringComparison.Ordinal);

        // An oversized file ends the request: the rest of its body (and any file after it) is not read, the connection closes.
        var tooBig = await team.Member.Http.PostAsync($"/v1/workspaces/{team.Id}/documents",
            Uploads.Form(("big.txt", Encoding.UTF8.GetBytes(new string('x', 5 * 1024 * 1024)), null), ("after.txt", "never read"u8.ToArray(), null)));
        Assert.True(tooBig.Headers.ConnectionClose);
        var oversized = await tooBig.AssertProblemAsync(413);
        Assert.Contains("4 MiB", oversized.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Single(oversized.GetProperty("files").EnumerateArray());

        var empty = await (await team.Member.Http.UploadAsync(team.Id, "empty.txt", [])).AssertProblemAsync(422);
        Assert.Contains("empty", empty.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var zip = await (await team.Member.Http.UploadAsync(team.Id, "archive.docx", ZipOf(("a.txt", "a")))).AssertProblemAsync(415);
        Assert.Contains("application/zip", zip.GetProperty("detail").GetString(), StringComparison.Ordinal);

        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.False(Directory.Exists(Path.Combine(server.TestHome, "objects", "workspaces", team.Id)) &&
            Directory.EnumerateFiles(Path.Combine(server.TestHome, "objects", "workspaces", team.Id), "*", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public async Task Hostile_file_names_are_metadata_only_and_cleaned()
    {
        var team = await server.TeamAsync();
        var names = new Dictionary<string, string>
        {
            ["../../etc/passwd"] = "passwd",
            ["..\\..\\windows\\system.ini"] = "system.ini",
            ["evil\0name.txt"] = "evilname.txt",
            ["invoice\u202Etxt.exe"] = "invoicetxt.exe",
            [new string('a', 300) + ".txt"] = new string('a', 251) + ".txt",
        };
        var i = 0;
        foreach (var (hostile, expected) in names)
        {
            var id = await team.Member.Http.AcceptedAsync(team.Id, hostile, $"harmless text number {i++}");
            var document = await (await team.Member.Http.GetAsync($"/v1/workspaces/{team.Id}/documents/{id}")).AssertStatusAsync(200);
            Assert.Equal(expected, document.GetProperty("file_name").GetString());
            Assert.Equal($"workspaces/{team.Id}/documents/{id:N}", await server.OwnerScalarAsync<string>("SELECT storage_path FROM imported_documents WHERE id = @id", new { id }));
        }
        Assert.False(File.Exists(Path.Combine(server.TestHome, "etc", "passwd")));
        Assert.Empty(Directory.GetFiles(Path.Combine(server.TestHome, "objects"), "*passwd*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Bad_requests_are_problems_not_errors()
    {
        var team = await server.TeamAsync();
        var url = $"/v1/workspaces/{team.Id}/documents";
        await (await team.Member.Http.PostAsync(url, new StringContent("{}", Encoding.UTF8, "application/json"))).AssertProblemAsync(415);
        var noFile = new MultipartFormDataContent { { new StringContent("just a field"), "comment" } };
        await (await team.Member.Http.PostAsync(url, noFile)).AssertProblemAsync(400);
        var broken = new ByteArrayContent(Encoding.ASCII.GetBytes("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\r\nno closing boundary"));
        broken.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b");
        await (await team.Member.Http.PostAsync(url, broken)).AssertProblemAsync(400);
        await (await team.Member.Http.UploadAsync(team.Id, "x.txt", "x", batchId: Guid.NewGuid())).AssertProblemAsync(404);
        // A request takes 100 files; the 101st and anything after it are not read, and the connection closes.
        var many = await team.Member.Http.PostAsync(url, Uploads.Form(Enumerable.Range(0, 102).Select(i => ($"f{i}.txt", Encoding.UTF8.GetBytes($"file number {i}"), (string?)null)).ToArray()));
        Assert.True(many.Headers.ConnectionClose);
        var files = (await many.AssertStatusAsync(201)).GetProperty("files").EnumerateArray().ToList();
        Assert.Equal(101, files.Count);
        Assert.Equal(100, files.Count(f => f.GetProperty("outcome").GetString() == "accepted"));
        Assert.Contains("at most 100 files", files[^1].GetProperty("reason").GetString(), StringComparison.Ordinal);
        await (await team.Member.Http.GetAsync($"{url}?status=weird")).AssertProblemAsync(400);
        await (await team.Member.Http.GetAsync($"{url}/{Guid.NewGuid()}")).AssertProblemAsync(404);
    }

    [Fact]
    public async Task Roles_members_upload_viewers_read_admins_delete_and_restore()
    {
        var team = await server.TeamAsync();
        await (await team.Viewer.Http.UploadAsync(team.Id, "v.txt", "viewer words")).AssertProblemAsync(403);
        var id = await team.Member.Http.AcceptedAsync(team.Id, "beacon.txt", "The beacon on the reef flashes twice.");
        await team.Member.Http.SettledAsync(team.Id, id);
        Assert.Equal(200, (int)(await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents/{id}/content")).StatusCode);
        await (await team.Member.Http.DeleteAsync($"/v1/workspaces/{team.Id}/documents/{id}")).AssertProblemAsync(403);
        await (await team.Viewer.Http.PostAsync($"/v1/workspaces/{team.Id}/documents/{id}/reprocess", null)).AssertProblemAsync(403);

        Assert.Single(await HitsAsync(team.Viewer, team.Id, "beacon"));
        var deleted = await (await team.Admin.Http.DeleteAsync($"/v1/workspaces/{team.Id}/documents/{id}")).AssertStatusAsync(200);
        Assert.True(deleted.GetProperty("is_deleted").GetBoolean());
        Assert.Empty(await HitsAsync(team.Viewer, team.Id, "beacon")); // gone from search at once
        var listed = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents")).AssertStatusAsync(200);
        Assert.Empty(listed.GetProperty("items").EnumerateArray());
        var trash = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/documents?deleted=true")).AssertStatusAsync(200);
        Assert.Single(trash.GetProperty("items").EnumerateArray());

        var restored = await (await team.Admin.Http.PostAsync($"/v1/workspaces/{team.Id}/documents/{id}/restore", null)).AssertStatusAsync(200);
        Assert.False(restored.GetProperty("is_deleted").GetBoolean());
        Assert.Single(await HitsAsync(team.Viewer, team.Id, "beacon"));
        Assert.Equal(2, await server.OwnerScalarAsync<long>("SELECT count(*) FROM audit_log WHERE workspace_id = @ws AND action LIKE 'document.%'", new { ws = team.Id }));
    }

    [Fact]
    public async Task Another_workspace_can_neither_read_nor_find_a_document()
    {
        var mine = await server.TeamAsync();
        var theirs = await server.TeamAsync();
        var id = await mine.Member.Http.AcceptedAsync(mine.Id, "secret.txt", "The vault combination is tangerine.");
        await mine.Member.Http.SettledAsync(mine.Id, id);
        foreach (var path in new[] { "", "/content", "/chunks" })
        {
            await (await theirs.Owner.Http.GetAsync($"/v1/workspaces/{theirs.Id}/documents/{id}{path}")).AssertProblemAsync(404);
            await (await theirs.Owner.Http.GetAsync($"/v1/workspaces/{mine.Id}/documents/{id}{path}")).AssertProblemAsync(404);
        }
        await (await theirs.Owner.Http.DeleteAsync($"/v1/workspaces/{theirs.Id}/documents/{id}")).AssertProblemAsync(404);
        Assert.Empty(await HitsAsync(theirs.Owner, theirs.Id, "tangerine"));
        Assert.Single(await HitsAsync(mine.Viewer, mine.Id, "tangerine"));
    }

    [Fact]
    public async Task Unreadable_documents_fail_with_their_reason_and_reprocessing_replaces_chunks()
    {
        var team = await server.TeamAsync();
        var encrypted = await team.Member.Http.UploadAsync(team.Id, "locked.pdf", SampleDocuments.EncryptedPdf(), "application/pdf");
        var lockedId = (await encrypted.AssertStatusAsync(201)).GetProperty("files")[0].GetProperty("document_id").GetGuid();
        var locked = await team.Member.Http.SettledAsync(team.Id, lockedId);
        Assert.Equal("failed", locked.GetProperty("processing_status").GetString());
        Assert.Contains("encrypted", locked.GetProperty("error").GetString(), StringComparison.Ordinal);

        var id = await team.Member.Http.AcceptedAsync(team.Id, "guide.md", Guide);
        var first = await team.Member.Http.SettledAsync(team.Id, id);
        var chunks = first.GetProperty("chunk_count").GetInt32();
        var accepted = await (await team.Member.Http.PostAsync($"/v1/workspaces/{team.Id}/documents/{id}/reprocess", null)).AssertStatusAsync(202);
        Assert.Equal("pending", accepted.GetProperty("processing_status").GetString());
        var again = await team.Member.Http.SettledAsync(team.Id, id);
        Assert.Equal("completed", again.GetProperty("processing_status").GetString());
        Assert.Equal(chunks, again.GetProperty("chunk_count").GetInt32());
        Assert.Equal(chunks, await server.OwnerScalarAsync<long>("SELECT count(*) FROM document_chunks WHERE document_id = @id", new { id }));

        // A job for bytes already processed (a duplicate delivery, not a reprocess request) changes nothing.
        var before = await server.OwnerScalarAsync<DateTime>("SELECT updated_at FROM imported_documents WHERE id = @id", new { id });
        var jobId = Guid.CreateVersion7();
        await server.OwnerExecuteAsync(
            "INSERT INTO jobs (id, kind, payload, workspace_id) VALUES (@jobId, 'document', jsonb_build_object('workspaceId', @ws, 'documentId', @id), @ws)",
            new { jobId, ws = team.Id, id });
        for (var deadline = DateTime.UtcNow.AddSeconds(30); await server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE id = @jobId", new { jobId }) > 0;)
        {
            Assert.True(DateTime.UtcNow < deadline, "the duplicate job was not completed");
            await Task.Delay(50);
        }
        Assert.Equal(before, await server.OwnerScalarAsync<DateTime>("SELECT updated_at FROM imported_documents WHERE id = @id", new { id }));
    }

    [Fact]
    public async Task An_object_stored_without_its_row_is_swept_and_a_late_recording_records_nothing()
    {
        var team = await server.TeamAsync();
        var store = server.Service<IObjectStore>();
        var orphanKey = ObjectKeys.Document(team.Id, Guid.CreateVersion7());
        // The crash: the intent and the object were written, the request died before its row committed.
        await server.OwnerExecuteAsync("INSERT INTO pending_objects (object_key, workspace_id, created_at) VALUES (@orphanKey, @ws, now() - interval '7 hours')",
            new { orphanKey, ws = team.Id });
        await store.PutAsync(orphanKey, new MemoryStream("orphaned bytes"u8.ToArray()), MediaTypes.PlainText, CancellationToken.None);
        var recent = ObjectKeys.Document(team.Id, Guid.CreateVersion7());
        await server.OwnerExecuteAsync("INSERT INTO pending_objects (object_key, workspace_id) VALUES (@recent, @ws)", new { recent, ws = team.Id });

        Assert.True(await server.Service<ObjectSweeper>().SweepAsync(TimeSpan.FromHours(6), CancellationToken.None) >= 1);
        Assert.Null(await store.OpenReadAsync(orphanKey, CancellationToken.None));
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE object_key = @orphanKey", new { orphanKey }));
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM pending_objects WHERE object_key = @recent", new { recent })); // in flight: kept

        // A workspace cannot point the sweeper at another workspace's objects: intents are confined to its own prefix.
        var other = await server.TeamAsync();
        var refused = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => server.OwnerExecuteAsync(
            "INSERT INTO pending_objects (object_key, workspace_id) VALUES (@key, @ws)", new { key = ObjectKeys.Document(other.Id, Guid.CreateVersion7()), ws = team.Id }));
        Assert.Equal(Npgsql.PostgresErrorCodes.CheckViolation, refused.SqlState);

        // Files a crashed process left in the spool go too, once older than the grace period; fresh ones stay.
        var spool = server.Service<DocumentPipelineOptions>().TemporaryDirectory;
        Directory.CreateDirectory(spool);
        var stale = Path.Combine(spool, $"{Guid.NewGuid():N}.upload");
        var fresh = Path.Combine(spool, $"{Guid.NewGuid():N}.upload");
        await File.WriteAllTextAsync(stale, "left by a crash");
        await File.WriteAllTextAsync(fresh, "in flight");
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-7));
        Assert.True(server.Service<ObjectSweeper>().SweepTemporaryFiles(TimeSpan.FromHours(6)) >= 1);
        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(fresh));
        File.Delete(fresh);

        // Uploads go on after the crash.
        var id = await team.Member.Http.AcceptedAsync(team.Id, "after.txt", "life after the crash");
        Assert.Equal("completed", (await team.Member.Http.SettledAsync(team.Id, id)).GetProperty("processing_status").GetString());
    }

    internal static async Task<List<JsonElement>> HitsAsync(Actor actor, string workspaceId, string query, string extra = "")
    {
        var response = await actor.Http.GetAsync($"/v1/workspaces/{workspaceId}/search?q={Uri.EscapeDataString(query)}{extra}");
        var body = await response.AssertStatusAsync(200);
        return body.GetProperty("items").EnumerateArray().ToList();
    }

    private static byte[] ZipOf(params (string Name, string Content)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(buffer, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var writer = new StreamWriter(zip.CreateEntry(name).Open());
                writer.Write(content);
            }
        }
        return buffer.ToArray();
    }
}
