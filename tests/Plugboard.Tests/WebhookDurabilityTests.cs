using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Dapper;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Security;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// Nothing acknowledged is lost: a PostgreSQL cluster of the test's own is stopped and started again in the middle of
/// a burst of signed webhooks, and every event answered 2xx is found stored, with its job, afterwards.
/// </summary>
public sealed class WebhookDurabilityTests(Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _home = Directory.CreateTempSubdirectory("plugboard-webhook-restart").FullName;
    private EmbeddedPostgres _cluster = null!;

    public async Task InitializeAsync()
    {
        if (!OperatingSystem.IsWindows())
        {
            // As root the cluster runs as the postgres user, which must be able to enter the home directory.
            File.SetUnixFileMode(_home, (UnixFileMode)0b111_101_101);
        }
        _cluster = new EmbeddedPostgres(_home);
        await _cluster.StartAsync(_ => { }, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await _cluster.StopAsync(CancellationToken.None);
        Directory.Delete(_home, recursive: true);
    }

    [Fact]
    public async Task Every_event_answered_2xx_during_a_burst_across_a_PostgreSQL_restart_is_stored_with_its_job()
    {
        var configuration = new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = _cluster.DatabaseUrl,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = _cluster.RolePassword,
            ["PLUGBOARD_KEYS"] = KeyRing.Generate().ToJson(),
            ["PLUGBOARD_WEBHOOK_RATE_LIMIT"] = "100000",
        };
        var settings = DatabaseSettings.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(configuration).Build());
        Migrator.Up(settings);
        var app = PlugboardApp.Build([], new PlugboardHostOptions(_home, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: HostMode.Api), configuration);
        await app.StartAsync();
        await using var _ = app;
        var url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        string key;
        await using (var db = new Db(settings))
        {
            key = (await Bootstrap.EnsureOwnerAsync(db, _home, "owner@restart.test", CancellationToken.None)).ApiKey!;
        }
        using var admin = new HttpClient { BaseAddress = url };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var workspace = (await (await admin.PostAsJsonAsync("/v1/workspaces", new { name = "restart" })).AssertStatusAsync(201)).GetProperty("id").GetString()!;
        var owner = new Actor(Guid.Empty, "owner@restart.test", key, admin);
        var team = new TeamWorkspace(workspace, owner, owner, owner, owner);
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "standard" }));

        using var sender = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
        var answers = new ConcurrentBag<(string Id, HttpStatusCode? Status)>();
        var ok = 0;
        using var stop = new CancellationTokenSource();
        var senders = Enumerable.Range(0, 8).Select(s => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var id = $"evt-{s}-{i}";
                HttpStatusCode? status = null;
                try
                {
                    using var response = await sender.SendAsync(Webhooks.Standard(hook, $$"""{"type":"burst","n":{{i}}}""", id));
                    status = response.StatusCode;
                }
                catch (HttpRequestException)
                {
                    // The connection broke: no answer, so not acknowledged.
                }
                answers.Add((id, status));
                if (status == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref ok);
                }
            }
        })).ToList();

        async Task WaitForAcceptedAsync(int count)
        {
            for (var deadline = DateTime.UtcNow.AddSeconds(60); Volatile.Read(ref ok) < count; await Task.Delay(20))
            {
                Assert.True(DateTime.UtcNow < deadline, $"only {Volatile.Read(ref ok)} of {count} events accepted");
            }
        }
        await WaitForAcceptedAsync(200);
        await _cluster.StopAsync(CancellationToken.None); // fast shutdown: in-flight transactions are aborted
        await Task.Delay(500);
        await _cluster.StartAsync(_ => { }, CancellationToken.None);
        await WaitForAcceptedAsync(Volatile.Read(ref ok) + 200);
        await stop.CancelAsync();
        await Task.WhenAll(senders);

        var acknowledged = answers.Where(a => a.Status is >= HttpStatusCode.OK and < HttpStatusCode.MultipleChoices).Select(a => a.Id).ToHashSet();
        var refused = answers.Count(a => a.Status is null or >= HttpStatusCode.InternalServerError);
        Assert.True(refused > 0, $"the restart refused nothing ({answers.Count} requests)");
        Assert.DoesNotContain(answers, a => a.Status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError);
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(settings.OwnerConnectionString) { Pooling = false }.ConnectionString);
        var stored = (await connection.QueryAsync<string>(
            """
            SELECT e.external_id FROM connector_webhook_events e
              JOIN (SELECT DISTINCT jsonb_array_elements_text(payload->'eventIds')::uuid AS id FROM jobs WHERE kind = 'webhook') j ON j.id = e.id
             WHERE e.connector_id = @id
            """, new { id = Guid.Parse(hook.ConnectorId) })).ToHashSet();
        var lost = acknowledged.Except(stored).ToList();
        output.WriteLine($"{answers.Count} requests: {acknowledged.Count} acknowledged, {refused} refused by the restart, {stored.Count} stored, {lost.Count} lost");
        Assert.True(lost.Count == 0, $"{lost.Count} of {acknowledged.Count} acknowledged events are not stored with a job: {string.Join(", ", lost.Take(5))}");
        Assert.True(acknowledged.Count > 400, $"{acknowledged.Count} acknowledged");
    }
}
