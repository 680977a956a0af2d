using System.Diagnostics;
using System.Globalization;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using NpgsqlTypes;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Plugboard.Engine.Running;
using Plugboard.Features.Syncs;

namespace Plugboard.Bench;

/// <summary>
/// A sync of a paginated local source (100,000 records by default, 1,000 per page) into <c>imported_documents</c> —
/// the engine's requests, pagination and mapping, then the import with its document jobs in one transaction, as the
/// sync job does — against a binary <c>COPY</c> of the same rows into the same table in the same run. Then the same
/// sync again over unchanged records. Prints rows/s of both, and <c>resync_speedup</c> (first / second duration), and
/// last <c>ratio: sync rows/s / COPY rows/s</c>.
/// </summary>
public static class ImportBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var total = BenchTools.Arg(args, "--records", 100_000);
        var pageSize = BenchTools.Arg(args, "--page", 1000);
        var settings = await BenchDatabase.CreateAsync("import");
        Migrator.Up(settings);
        await using var stub = await Stub.StartAsync(app => app.MapGet("/records", (HttpRequest request) =>
        {
            var offset = int.Parse(request.Query["offset"].ToString(), CultureInfo.InvariantCulture);
            var count = Math.Max(0, Math.Min(pageSize, total - offset));
            return Results.Json(new { data = Enumerable.Range(offset, count).Select(Record) });
        }), record: false);
        var manifest = ManifestParser.Parse($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: list
                request: { method: GET, path: /records }
                extract: { items: "$.data[*]" }
                paginate: { type: offset, limit: {{{pageSize}}}, max_pages: 1000 }
            streams:
              - name: records
                records: steps.list.items
                primary_key: "{{ record.id }}"
                document:
                  title: "{{ record.title }}"
                  url: "{{ record.url }}"
                  content: "{{ record.body }}"
                  metadata: { author: "{{ record.author }}" }
            """).Manifest ?? throw new InvalidOperationException("the benchmark manifest is invalid");

        await using var owner = new NpgsqlConnection(settings.OwnerConnectionString);
        await owner.OpenAsync();
        await owner.ExecuteAsync(
            """
            INSERT INTO workspaces (id, name) VALUES ('ws_importbench', 'bench');
            INSERT INTO connectors (workspace_id, id, name) VALUES ('ws_importbench', @sync, 'sync'), ('ws_importbench', @copy, 'copy'), ('ws_importbench', @warm, 'warm');
            """, new { sync = SyncConnector, copy = CopyConnector, warm = WarmConnector });

        using var http = new HttpMessageInvoker(SsrfGuard.CreateHandler(SsrfOptions.FromList("127.0.0.1/32")));
        var runner = new ConnectorRunner(http, new RunnerOptions { MaxRunResponseBytes = 1L << 30, ExecutionTimeout = TimeSpan.FromMinutes(30) });
        await using var db = new Db(settings);

        // Warm-up: one pass of the engine over the source, and a small import into a connector of its own (JIT settled).
        await SyncAsync(runner, manifest, db, WarmConnector, take: 2000);
        var copySeconds = await CopyAsync(owner, total);
        var (firstSeconds, first) = await SyncAsync(runner, manifest, db, SyncConnector);
        var (secondSeconds, second) = await SyncAsync(runner, manifest, db, SyncConnector);
        if (first.Created != total || second.Unchanged != total)
        {
            Console.Error.WriteLine($"unexpected counts: first {first}, second {second}");
            return 1;
        }
        Console.WriteLine($"records: {total}, {pageSize} per page");
        Console.WriteLine($"copy_rows_per_s: {total / copySeconds:F0} ({copySeconds:F2} s)");
        Console.WriteLine($"sync_rows_per_s: {total / firstSeconds:F0} ({firstSeconds:F2} s: {first.Created} created)");
        Console.WriteLine($"resync: {secondSeconds:F2} s ({second.Unchanged} unchanged)");
        Console.WriteLine($"resync_speedup: {firstSeconds / secondSeconds:F2}");
        Console.WriteLine($"ratio: {copySeconds / firstSeconds:F3}");
        return 0;
    }

    private static readonly Guid SyncConnector = Guid.CreateVersion7();
    private static readonly Guid CopyConnector = Guid.CreateVersion7();
    private static readonly Guid WarmConnector = Guid.CreateVersion7();

    private static object Record(int i) => new
    {
        id = i,
        title = $"Record {i}",
        url = $"https://source.test/records/{i}",
        author = $"author-{i % 97}",
        body = $"Record {i} describes item {i * 7 % 1000} of the catalogue; it was reviewed by author {i % 97} and filed under section {i % 13}.",
    };

    private static async Task<(double Seconds, ImportCounts Counts)> SyncAsync(ConnectorRunner runner, Manifest manifest, Db db, Guid connector, int? take = null)
    {
        var watch = Stopwatch.StartNew();
        var result = await runner.SyncAsync(manifest, new RunRequest([], [], new Dictionary<string, string>()) { Sync = new SyncRequest(false, new Dictionary<string, string>()) },
            null, CancellationToken.None);
        if (result.Status != RunStatus.Succeeded)
        {
            throw new InvalidOperationException($"sync failed: {result.Error}");
        }
        var engineSeconds = watch.Elapsed.TotalSeconds;
        await using var connection = await db.Service.OpenConnectionAsync(CancellationToken.None);
        await using var tx = await connection.BeginTransactionAsync();
        await SyncImport.EnsureCounterAsync(connection, tx, "ws_importbench", CancellationToken.None);
        var stream = result.Streams.Single();
        if (take is { } count)
        {
            stream = stream with { Records = stream.Records.Take(count).ToList() };
        }
        var counts = await SyncImport.ImportAsync(connection, tx, "ws_importbench", connector, stream, false, 4, CancellationToken.None);
        await tx.CommitAsync();
        Console.WriteLine($"  sync: {engineSeconds:F2} s requests and mapping, {watch.Elapsed.TotalSeconds - engineSeconds:F2} s import");
        return (watch.Elapsed.TotalSeconds, counts);
    }

    /// <summary>The same rows (same columns, same content and hash) written by binary COPY: the floor of writing them.</summary>
    private static async Task<double> CopyAsync(NpgsqlConnection owner, int total)
    {
        var watch = Stopwatch.StartNew();
        await using (var writer = await owner.BeginBinaryImportAsync(
            "COPY imported_documents (workspace_id, id, connector_id, external_id, stream, source, title, external_url, content_type, content, file_size, content_hash, source_metadata) FROM STDIN (FORMAT BINARY)"))
        {
            for (var i = 0; i < total; i++)
            {
                var title = $"Record {i}";
                var url = $"https://source.test/records/{i}";
                var content = $"Record {i} describes item {i * 7 % 1000} of the catalogue; it was reviewed by author {i % 97} and filed under section {i % 13}.";
                var metadata = $$"""{"author":"author-{{i % 97}}"}""";
                var hash = SyncImport.Hash(new SyncedRecord(i.ToString(CultureInfo.InvariantCulture), title, url, "text/plain", content, metadata, null));
                await writer.StartRowAsync();
                await writer.WriteAsync("ws_importbench", NpgsqlDbType.Text);
                await writer.WriteAsync(Guid.NewGuid(), NpgsqlDbType.Uuid);
                await writer.WriteAsync(CopyConnector, NpgsqlDbType.Uuid);
                await writer.WriteAsync(i.ToString(CultureInfo.InvariantCulture), NpgsqlDbType.Text);
                await writer.WriteAsync("records", NpgsqlDbType.Text);
                await writer.WriteAsync("sync", NpgsqlDbType.Text);
                await writer.WriteAsync(title, NpgsqlDbType.Text);
                await writer.WriteAsync(url, NpgsqlDbType.Text);
                await writer.WriteAsync("text/plain", NpgsqlDbType.Text);
                await writer.WriteAsync(content, NpgsqlDbType.Text);
                await writer.WriteAsync((long)System.Text.Encoding.UTF8.GetByteCount(content), NpgsqlDbType.Bigint);
                await writer.WriteAsync(hash, NpgsqlDbType.Text);
                await writer.WriteAsync(metadata, NpgsqlDbType.Jsonb);
            }
            await writer.CompleteAsync();
        }
        return watch.Elapsed.TotalSeconds;
    }
}
