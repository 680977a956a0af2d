using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Plugboard.Data;
using Plugboard.Features.Templates;
using Plugboard.Hosting;
using Plugboard.Security;

namespace Plugboard.Tests.Infrastructure;

/// <summary>
/// One real Plugboard server for the test run: its own fresh database on the PostgreSQL that ./test started,
/// Kestrel on 127.0.0.1, real HTTP clients. Each test makes its own users and workspaces.
/// </summary>
public sealed class PlugboardServer : IAsyncLifetime
{
    private WebApplication? _app;
    private readonly CapturingWriter _log;

    public PlugboardServer()
    {
        TestHome = Environment.GetEnvironmentVariable("PLUGBOARD_TEST_HOME") is { Length: > 0 } h ? h : Directory.CreateTempSubdirectory("plugboard-test").FullName;
        _log = new CapturingWriter(Path.Combine(TestHome, "server.log"));
        Canary = "CANARY-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        File.WriteAllText(Path.Combine(TestHome, "canary.txt"), Canary);
    }

    public string TestHome { get; }
    public string Canary { get; }
    public Uri BaseAddress { get; private set; } = null!;
    public DatabaseSettings Settings { get; private set; } = null!;
    public string DatabaseName { get; private set; } = "";
    public KeyRing Keys { get; private set; } = null!;
    public Actor PlatformOwner { get; private set; } = null!;
    public string LogText => _log.Text;
    public IReadOnlyList<string> ResponseBodies => _responses.ToArray();
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _responses = new();

    public static string OwnerUrl => Environment.GetEnvironmentVariable("DATABASE_URL")
        ?? throw new InvalidOperationException("DATABASE_URL is not set: run the tests with ./test, which starts PostgreSQL.");

    public static string RolePassword => Environment.GetEnvironmentVariable("PLUGBOARD_DB_ROLE_PASSWORD") ?? "";

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Plugboard.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root.");
        }
    }

    /// <summary>Creates an empty database on the test cluster and returns settings pointing at it.</summary>
    public static async Task<DatabaseSettings> CreateDatabaseAsync(string name)
    {
        var owner = new NpgsqlConnectionStringBuilder(DatabaseSettings.ToConnectionString(OwnerUrl));
        await using (var connection = new NpgsqlConnection(owner.ConnectionString))
        {
            await connection.OpenAsync();
            await connection.ExecuteAsync($"CREATE DATABASE {name}");
        }
        owner.Database = name;
        var rolePassword = RolePassword.Length > 0 ? RolePassword : null;
        return new DatabaseSettings(owner.ConnectionString,
            DatabaseSettings.WithRole(owner.ConnectionString, DatabaseSettings.ApiRole, rolePassword),
            DatabaseSettings.WithRole(owner.ConnectionString, DatabaseSettings.ServiceRole, rolePassword), rolePassword);
    }

    public async Task InitializeAsync()
    {
        DatabaseName = "pbtest_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        Settings = await CreateDatabaseAsync(DatabaseName);
        Migrator.Up(Settings);
        Keys = KeyRing.Generate();
        _app = PlugboardApp.Build([], new PlugboardHostOptions(TestHome, "http://127.0.0.1:0", _log, CreateKeyRing: false), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = Settings.RolePassword,
            ["PLUGBOARD_KEYS"] = Keys.ToJson(),
            ["PLUGBOARD_LOG_LEVEL"] = "Debug",
            ["PLUGBOARD_OUTBOUND_ALLOW"] = "127.0.0.1/32",
            ["PLUGBOARD_WORKSPACE_RATE_LIMIT"] = "1000",
            ["PLUGBOARD_UPLOAD_MAX_MB"] = "4",
            // Tests start scheduled syncs by calling the scheduler themselves (SyncTests): its own loop ticks once, at start.
            ["PLUGBOARD_SCHEDULER_POLL_SECONDS"] = "86400",
            ["PLUGBOARD_SYNC_CHECKPOINT_RECORDS"] = "4",
            // Webhook tests reach these limits on purpose; each endpoint has its own bucket.
            ["PLUGBOARD_WEBHOOK_RATE_LIMIT"] = "20",
            ["PLUGBOARD_WEBHOOK_RATE_BURST"] = "60",
            ["PLUGBOARD_WEBHOOK_MAX_BYTES"] = "65536",
            ["PLUGBOARD_WEBHOOK_MAX_INFLIGHT_MB"] = "1",
            ["PLUGBOARD_WEBHOOK_BODY_SECONDS"] = "3",
        });
        Keys = _app.Services.GetRequiredService<KeyRing>();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
        var db = _app.Services.GetRequiredService<Db>();
        await OfficialTemplateLoader.LoadAsync(db, Path.Combine(RepoRoot, "templates"), CancellationToken.None);
        var boot = await Bootstrap.EnsureOwnerAsync(db, Path.Combine(TestHome, "bootstrap"), "owner@plugboard.test", CancellationToken.None);
        var ownerId = await OwnerScalarAsync<Guid>("SELECT id FROM users WHERE email = 'owner@plugboard.test'");
        PlatformOwner = new Actor(ownerId, "owner@plugboard.test", boot.ApiKey!, Client(boot.ApiKey));
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        NpgsqlConnection.ClearAllPools();
    }

    public T Service<T>() where T : notnull => _app!.Services.GetRequiredService<T>();

    /// <summary>A new <typeparamref name="T"/> from the server's services, with <paramref name="overrides"/> in place of those of their types.</summary>
    public T Create<T>(params object[] overrides) => ActivatorUtilities.CreateInstance<T>(_app!.Services, overrides);

    public HttpClient Client(string? apiKey)
    {
        var client = new HttpClient(new RecordingHandler(_responses)) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
        return client;
    }

    public async Task<T> OwnerScalarAsync<T>(string sql, object? args = null)
    {
        await using var connection = new NpgsqlConnection(Settings.OwnerConnectionString);
        return (await connection.ExecuteScalarAsync<T>(sql, args))!;
    }

    public async Task OwnerExecuteAsync(string sql, object? args = null)
    {
        await using var connection = new NpgsqlConnection(Settings.OwnerConnectionString);
        await connection.ExecuteAsync(sql, args);
    }

    /// <summary>A new user with a personal API key (and a platform role, if given).</summary>
    public async Task<Actor> NewUserAsync(string? platformRole = null)
    {
        var email = $"u{Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant()}@example.test";
        var userId = Guid.CreateVersion7();
        await OwnerExecuteAsync("INSERT INTO users (id, email) VALUES (@userId, @email)", new { userId, email });
        if (platformRole is not null)
        {
            await OwnerExecuteAsync("INSERT INTO saas_admin_users (user_id, role) VALUES (@userId, @platformRole)", new { userId, platformRole });
        }
        var key = await Bootstrap.CreateKeyAsync(Service<Db>(), email, "test", null, null, CancellationToken.None);
        return new Actor(userId, email, key, Client(key));
    }

    public async Task<string> CreateWorkspaceAsync(Actor owner, string name = "Test workspace")
    {
        var response = await owner.Http.PostAsJsonAsync("/v1/workspaces", new { name });
        var body = await response.ReadJsonAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, body.ToString());
        return body.GetProperty("id").GetString()!;
    }

    /// <summary>A new user added to the workspace with the given role by its owner.</summary>
    public async Task<Actor> AddMemberAsync(string workspaceId, Actor owner, string role)
    {
        var member = await NewUserAsync();
        var response = await owner.Http.PostAsJsonAsync($"/v1/workspaces/{workspaceId}/members", new { email = member.Email, role });
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return member;
    }

    /// <summary>A workspace with one actor per role.</summary>
    public async Task<TeamWorkspace> TeamAsync()
    {
        var owner = await NewUserAsync();
        var id = await CreateWorkspaceAsync(owner);
        return new TeamWorkspace(id, owner, await AddMemberAsync(id, owner, "admin"), await AddMemberAsync(id, owner, "member"), await AddMemberAsync(id, owner, "viewer"));
    }

    private sealed class RecordingHandler(System.Collections.Concurrent.ConcurrentQueue<string> sink) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            await response.Content.LoadIntoBufferAsync(cancellationToken);
            sink.Enqueue(string.Join("\n", response.Headers.Select(h => $"{h.Key}: {string.Join(",", h.Value)}")) + "\n" + await response.Content.ReadAsStringAsync(cancellationToken));
            return response;
        }
    }

    private sealed class CapturingWriter(string path) : TextWriter
    {
        private readonly StringBuilder _text = new();
        private readonly StreamWriter _file = new(path, append: true) { AutoFlush = true };
        private readonly Lock _gate = new();

        public override Encoding Encoding => Encoding.UTF8;

        public string Text
        {
            get
            {
                lock (_gate)
                {
                    return _text.ToString();
                }
            }
        }

        public override void Write(char value)
        {
            lock (_gate)
            {
                _text.Append(value);
                _file.Write(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_gate)
            {
                _text.Append(value);
                _file.Write(value);
            }
        }

        public override void WriteLine(string? value)
        {
            lock (_gate)
            {
                _text.AppendLine(value);
                _file.WriteLine(value);
            }
        }
    }
}

public sealed record Actor(Guid UserId, string Email, string Key, HttpClient Http);

public sealed record TeamWorkspace(string Id, Actor Owner, Actor Admin, Actor Member, Actor Viewer)
{
    public Actor As(string role) => role switch { "owner" => Owner, "admin" => Admin, "member" => Member, "viewer" => Viewer, _ => throw new ArgumentException(role) };
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<PlugboardServer>
{
    public const string Name = "server";
}

public static class HttpAssertions
{
    public static async Task<JsonElement> ReadJsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Asserts an RFC 9457 problem with the given status (and type slug, if given).</summary>
    public static async Task<JsonElement> AssertProblemAsync(this HttpResponseMessage response, int status, string? slug = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal(status, body.GetProperty("status").GetInt32());
        var type = body.GetProperty("type").GetString()!;
        Assert.StartsWith("urn:plugboard:problem:", type);
        if (slug is not null)
        {
            Assert.Equal("urn:plugboard:problem:" + slug, type);
        }
        return body;
    }

    public static async Task<JsonElement> AssertStatusAsync(this HttpResponseMessage response, int status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    public static HttpContent Json(object value) => JsonContent.Create(value);

    public static HttpContent RawJson(string json) => new StringContent(json, Encoding.UTF8, "application/json");
}
