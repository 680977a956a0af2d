using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Bench;

/// <summary>
/// Inbound webhooks: concurrent senders post Standard Webhooks–signed events to a connector's endpoint, which
/// verifies each and commits it with its job before answering; the baseline is a plain endpoint on the same server
/// that reads the same body and answers 202 without verifying or storing, under the same load. Prints both rates,
/// checks that the stored events equal the 2xx answers (lost), and last the ratio ingest / plain.
/// </summary>
public static class WebhooksBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        // Many deliveries in flight at once, as a busy installation receives them; ingest waits on commits (each batch's
        // WAL flush), so with few senders it is bound by that latency rather than by CPU.
        var senders = BenchTools.Arg(args, "--senders", 128);
        var seconds = BenchTools.Arg(args, "--seconds", 5);
        var settings = await BenchDatabase.CreateAsync("webhooks");
        Migrator.Up(settings);
        var home = Directory.CreateTempSubdirectory("plugboard-bench-webhooks");
        // The API alone (as `plugboard serve` runs it): processing jobs stay queued, so only ingest is measured.
        var app = BenchHost.Build(settings, home.FullName, HostMode.Api, new Dictionary<string, string?> { ["PLUGBOARD_WEBHOOK_RATE_LIMIT"] = "1000000" });
        app.MapPost("/bench/plain", async (HttpRequest request) =>
        {
            await request.Body.CopyToAsync(Stream.Null);
            return Results.StatusCode(202);
        }).AllowAnonymous();
        await app.StartAsync();
        await using var db = new Db(settings);
        var owner = await Bootstrap.EnsureOwnerAsync(db, home.FullName, "owner@webhooks.bench", CancellationToken.None);
        var url = BenchHost.Address(app);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = senders * 2 }) { BaseAddress = url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", owner.ApiKey);
        var created = await http.PostAsJsonAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors", new
        {
            name = "webhooks",
            webhook_active = true,
            manifest = new
            {
                version = 1,
                base_url = "http://127.0.0.1:9",
                steps = new[] { new { id = "a", request = new { method = "GET", path = "/" } } },
                webhooks = new { verify = "standard" },
            },
        });
        created.EnsureSuccessStatusCode();
        var connector = await created.Content.ReadFromJsonAsync<JsonElement>();
        var connectorId = connector.GetProperty("id").GetString()!;
        var hookPath = connector.GetProperty("webhook_url").GetString()!;
        var secretAnswer = await http.PostAsJsonAsync($"/v1/workspaces/{owner.WorkspaceId}/connectors/{connectorId}/webhook/secret", new { });
        secretAnswer.EnsureSuccessStatusCode();
        var key = Convert.FromBase64String((await secretAnswer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("secret").GetString()!["whsec_".Length..]);
        using var sender = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = senders * 2 }) { BaseAddress = url };

        var sequence = 0L;
        // The same signed request for both endpoints: the senders do the same work, only the server's differs.
        HttpRequestMessage Signed(string path)
        {
            var n = Interlocked.Increment(ref sequence);
            var id = $"msg_{n}";
            var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            var body = "{\"type\":\"recording.completed\",\"data\":{\"id\":" + n.ToString(CultureInfo.InvariantCulture)
                       + ",\"topic\":\"Weekly sync\",\"duration\":30,\"host_email\":\"host@example.com\"}}";
            var signature = Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("webhook-id", id);
            request.Headers.Add("webhook-timestamp", timestamp);
            request.Headers.Add("webhook-signature", "v1," + signature);
            return request;
        }
        async Task<(long Ok, long Other, double Seconds)> DriveAsync(string path, TimeSpan duration)
        {
            long ok = 0, other = 0;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, senders).Select(async _ =>
            {
                while (clock.Elapsed < duration)
                {
                    using var response = await sender.SendAsync(Signed(path));
                    Interlocked.Increment(ref response.IsSuccessStatusCode ? ref ok : ref other);
                }
            }));
            return (ok, other, clock.Elapsed.TotalSeconds);
        }
        async Task<long> StoredAsync()
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<long>(
                """
                SELECT count(*) FROM connector_webhook_events e
                  JOIN (SELECT DISTINCT jsonb_array_elements_text(payload->'eventIds')::uuid AS id FROM jobs WHERE kind = 'webhook') j ON j.id = e.id
                """);
        }

        // Each commit of the writer makes one job per connector, and the benchmark has one connector.
        async Task<double> EventsPerCommitAsync()
        {
            await using var connection = await db.Service.OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<double>(
                "SELECT avg(jsonb_array_length(payload->'eventIds')) FROM jobs WHERE kind = 'webhook'");
        }

        // Until the JIT's tiers and the GC's heap count settle, both sides speed up by the second; warm both well.
        var warmup = BenchTools.Arg(args, "--warmup-seconds", 10);
        Console.WriteLine($"warm-up: {warmup} s each …");
        await DriveAsync("/bench/plain", TimeSpan.FromSeconds(warmup));
        var warm = await DriveAsync(hookPath, TimeSpan.FromSeconds(warmup));
        var rounds = BenchTools.Arg(args, "--rounds", 3);
        // --only plain|ingest runs one side for the whole time (to profile it alone).
        var only = Array.IndexOf(args, "--only") is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : null;
        if (only is not null)
        {
            var alone = await DriveAsync(only == "plain" ? "/bench/plain" : hookPath, TimeSpan.FromSeconds(seconds * rounds));
            Console.WriteLine($"{only} alone: {alone.Ok / alone.Seconds:F0}/s");
            Console.WriteLine($"events per commit: {await EventsPerCommitAsync():F1}");
            await app.StopAsync();
            await app.DisposeAsync();
            home.Delete(recursive: true);
            return 0;
        }
        // Alternating rounds, so drift in the machine's speed falls on both sides alike.
        (long Ok, long Other, double Seconds) plain = default, ingest = default;
        for (var round = 1; round <= rounds; round++)
        {
            Console.WriteLine($"round {round}/{rounds}: {senders} senders, {seconds} s plain, then {seconds} s verified and committed …");
            var p = await DriveAsync("/bench/plain", TimeSpan.FromSeconds(seconds));
            var i = await DriveAsync(hookPath, TimeSpan.FromSeconds(seconds));
            plain = (plain.Ok + p.Ok, plain.Other + p.Other, plain.Seconds + p.Seconds);
            ingest = (ingest.Ok + i.Ok, ingest.Other + i.Other, ingest.Seconds + i.Seconds);
            Console.WriteLine($"  plain {p.Ok / p.Seconds:F0}/s, ingest {i.Ok / i.Seconds:F0}/s");
        }
        var stored = await StoredAsync();
        var perCommit = await EventsPerCommitAsync();
        await app.StopAsync();
        await app.DisposeAsync();
        home.Delete(recursive: true);

        var acknowledged = warm.Ok + ingest.Ok;
        var plainRate = plain.Ok / plain.Seconds;
        var ingestRate = ingest.Ok / ingest.Seconds;
        Console.WriteLine($"plain_per_s: {plainRate:F0} ({plain.Other} not 2xx)");
        Console.WriteLine($"ingest_events_per_s: {ingestRate:F0} ({ingest.Other} not 2xx)");
        Console.WriteLine($"events per commit: {perCommit:F1}");
        Console.WriteLine($"acknowledged: {acknowledged}, stored with their jobs: {stored}");
        Console.WriteLine($"lost: {acknowledged - stored}");
        Console.WriteLine($"ratio: {ingestRate / plainRate:F3}");
        return acknowledged == stored && ingest.Other == 0 ? 0 : 1;
    }
}
