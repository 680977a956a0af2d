using System.Diagnostics;
using System.Net.Http.Headers;
using Dapper;
using Npgsql;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Bench;

/// <summary>
/// Workspace search at scale: 1,000,000 chunks across 1,000 workspaces (generated in SQL, words Zipf-distributed),
/// then the same list of one- and two-word queries twice — through the API (`GET …/search`, authenticated, row-level
/// security, ranking, snippets) and as the same full-text query run directly in SQL with the workspace predicate.
/// Prints p50/p99 of both, <c>p99_ms</c> of the API, and last <c>ratio: API p99 / SQL p99</c>.
/// </summary>
public static class SearchBenchmark
{
    private const string SqlQuery =
        """
        WITH q AS (SELECT websearch_to_tsquery('english', @q) AS query),
        page AS (
            SELECT c.document_id, c.ordinal, ts_rank(c.search, q.query, 1)::real AS rank
              FROM document_chunks c JOIN imported_documents d ON d.workspace_id = c.workspace_id AND d.id = c.document_id CROSS JOIN q
             WHERE c.workspace_id = @ws AND c.search @@ q.query AND NOT d.is_deleted
             ORDER BY rank DESC, c.document_id DESC, c.ordinal DESC LIMIT 21)
        SELECT p.document_id, p.ordinal, p.rank, d.title,
               ts_headline('english', c.content, q.query, 'StartSel=<, StopSel=>, MaxWords=40, MinWords=15, MaxFragments=2') AS snippet
          FROM page p
          JOIN document_chunks c ON c.workspace_id = @ws AND c.document_id = p.document_id AND c.ordinal = p.ordinal
          JOIN imported_documents d ON d.workspace_id = c.workspace_id AND d.id = p.document_id CROSS JOIN q
         ORDER BY p.rank DESC
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var workspaces = BenchTools.Arg(args, "--workspaces", 1000);
        var chunksPerWorkspace = BenchTools.Arg(args, "--chunks-per-workspace", 1000);
        var queries = BenchTools.Arg(args, "--queries", 2000);
        var concurrency = BenchTools.Arg(args, "--clients", 4);
        var settings = await BenchDatabase.CreateAsync("search");
        Migrator.Up(settings);
        var random = new Random(17);
        var vocabulary = Corpus.Vocabulary(random, 20000);
        await using var db = new Db(settings);
        var home = Directory.CreateTempSubdirectory("plugboard-bench-search");
        var owner = await Bootstrap.EnsureOwnerAsync(db, home.FullName, "owner@search.bench", CancellationToken.None);
        var userId = await ScalarAsync<Guid>(settings, "SELECT id FROM users WHERE email = 'owner@search.bench'");
        var ids = Enumerable.Range(0, workspaces).Select(i => $"ws_bench{i:D8}").ToArray();

        var load = Stopwatch.StartNew();
        Console.WriteLine($"loading {workspaces * (long)chunksPerWorkspace:N0} chunks into {workspaces} workspaces …");
        await ExecuteAsync(settings, "DROP INDEX document_chunks_search_idx");
        await ExecuteAsync(settings,
            """
            INSERT INTO workspaces (id, name) SELECT unnest(@ids), 'bench';
            INSERT INTO workspace_members (workspace_id, user_id, role) SELECT unnest(@ids), @userId, 'viewer';
            INSERT INTO imported_documents (workspace_id, id, title, source, content_type, processing_status, chunks_generated, chunk_count)
                SELECT w, gen_random_uuid(), 'Document ' || n, 'upload', 'text/markdown', 'completed', true, @perDocument
                  FROM unnest(@ids) AS w, generate_series(1, 10) AS n;
            CREATE UNLOGGED TABLE bench_text (workspace_id text, document_id uuid, ordinal int, content text, part int);
            """, new { ids, userId, perDocument = chunksPerWorkspace / 10 });
        var documents = new List<(string Workspace, Guid Id)>();
        await using (var connection = new NpgsqlConnection(settings.OwnerConnectionString))
        {
            await connection.OpenAsync();
            documents.AddRange(await connection.QueryAsync<(string, Guid)>("SELECT workspace_id, id FROM imported_documents ORDER BY workspace_id, id"));
            await using var copy = await connection.BeginTextImportAsync("COPY bench_text (workspace_id, document_id, ordinal, content, part) FROM STDIN");
            for (var d = 0; d < documents.Count; d++)
            {
                for (var o = 0; o < chunksPerWorkspace / 10; o++)
                {
                    await copy.WriteAsync($"{documents[d].Workspace}\t{documents[d].Id}\t{o}\t{Corpus.Sentence(random, vocabulary, 50 + o % 20)}\t{d % 2}\n");
                }
            }
        }
        // Two loaders (two cores), each indexing half of the text.
        await Task.WhenAll(Enumerable.Range(0, 2).Select(part => ExecuteAsync(settings,
            """
            INSERT INTO document_chunks (workspace_id, document_id, ordinal, content, heading_path, char_start, char_end, token_count, search)
            SELECT t.workspace_id, t.document_id, t.ordinal, t.content, ARRAY['Section ' || (t.ordinal / 10)], 0, length(t.content), 80,
                   setweight(to_tsvector('english', d.title), 'A') || setweight(to_tsvector('english', 'Section ' || (t.ordinal / 10)), 'B')
                   || setweight(to_tsvector('english', t.content), 'D')
              FROM bench_text t JOIN imported_documents d ON d.workspace_id = t.workspace_id AND d.id = t.document_id
             WHERE t.part = @part
            """, new { part }, timeoutSeconds: 3600)));
        await ExecuteAsync(settings, "DROP TABLE bench_text");
        await ExecuteAsync(settings, "CREATE INDEX document_chunks_search_idx ON document_chunks USING gin (workspace_id, search)", timeoutSeconds: 3600,
            preamble: "SET maintenance_work_mem = '1GB'");
        await ExecuteAsync(settings, "VACUUM ANALYZE document_chunks", timeoutSeconds: 3600);
        await ExecuteAsync(settings, "VACUUM ANALYZE imported_documents", timeoutSeconds: 3600);
        Console.WriteLine($"loaded {await ScalarAsync<long>(settings, "SELECT count(*) FROM document_chunks"):N0} chunks in {load.Elapsed.TotalSeconds:F0} s");

        var work = Enumerable.Range(0, queries).Select(_ => (Workspace: ids[random.Next(ids.Length)],
            Query: random.Next(3) == 0 ? $"{Corpus.Word(random, vocabulary)} {Corpus.Word(random, vocabulary)}" : Corpus.Word(random, vocabulary))).ToList();

        var app = BenchHost.Build(settings, home.FullName, HostMode.Api, new Dictionary<string, string?> { ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000000" });
        await app.StartAsync();
        var url = BenchHost.Address(app);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency * 2 }) { BaseAddress = url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
        long hits = 0;
        async Task Api((string Workspace, string Query) item)
        {
            using var response = await http.GetAsync($"/v1/workspaces/{item.Workspace}/search?q={Uri.EscapeDataString(item.Query)}");
            response.EnsureSuccessStatusCode();
            var body = await response.Content.ReadAsStringAsync();
            if (body.Contains("\"document_id\"", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref hits);
            }
        }
        await using var sql = NpgsqlDataSource.Create(settings.OwnerConnectionString);
        async Task Sql((string Workspace, string Query) item)
        {
            await using var connection = await sql.OpenConnectionAsync();
            await connection.QueryAsync(SqlQuery, new { ws = item.Workspace, q = item.Query });
        }

        Console.WriteLine($"warm-up, then {queries} queries each way from {concurrency} clients …");
        await MeasureAsync(work.Take(200).ToList(), concurrency, Api);
        await MeasureAsync(work.Take(200).ToList(), concurrency, Sql);
        var sqlTimes = await MeasureAsync(work, concurrency, Sql);
        hits = 0;
        var apiTimes = await MeasureAsync(work, concurrency, Api);
        await app.StopAsync();
        await app.DisposeAsync();
        home.Delete(recursive: true);

        Console.WriteLine($"{hits} of {queries} API searches found something");
        Console.WriteLine($"sql p50_ms: {BenchTools.Percentile(sqlTimes, 0.5):F2}  p99_ms: {BenchTools.Percentile(sqlTimes, 0.99):F2}");
        Console.WriteLine($"api p50_ms: {BenchTools.Percentile(apiTimes, 0.5):F2}  p99_ms: {BenchTools.Percentile(apiTimes, 0.99):F2}");
        Console.WriteLine($"p99_ms: {BenchTools.Percentile(apiTimes, 0.99):F1}");
        Console.WriteLine($"ratio: {BenchTools.Percentile(apiTimes, 0.99) / BenchTools.Percentile(sqlTimes, 0.99):F3}");
        return 0;
    }

    private static Task<List<double>> MeasureAsync(List<(string Workspace, string Query)> work, int concurrency, Func<(string, string), Task> run) =>
        BenchTools.MeasureAsync(work, concurrency, async item =>
        {
            var watch = Stopwatch.StartNew();
            await run(item);
            return watch.Elapsed.TotalMilliseconds;
        });

    private static async Task ExecuteAsync(DatabaseSettings settings, string sql, object? args = null, int timeoutSeconds = 600, string? preamble = null)
    {
        await using var connection = new NpgsqlConnection(settings.OwnerConnectionString);
        await connection.OpenAsync();
        if (preamble is not null)
        {
            await connection.ExecuteAsync(preamble);
        }
        await connection.ExecuteAsync(new CommandDefinition(sql, args, commandTimeout: timeoutSeconds));
    }

    private static async Task<T> ScalarAsync<T>(DatabaseSettings settings, string sql)
    {
        await using var connection = new NpgsqlConnection(settings.OwnerConnectionString);
        return (await connection.ExecuteScalarAsync<T>(sql))!;
    }
}
