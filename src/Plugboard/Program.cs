using System.CommandLine;
using Plugboard.Data;
using Plugboard.Features.Templates;
using Plugboard.Hosting;
using Plugboard.Security;
using Spectre.Console;

var home = Path.GetFullPath(Environment.GetEnvironmentVariable("PLUGBOARD_HOME") is { Length: > 0 } h ? h : ".plugboard");
var urls = Environment.GetEnvironmentVariable("PLUGBOARD_URLS") is { Length: > 0 } u ? u : "http://127.0.0.1:5080";
var templatesDir = Environment.GetEnvironmentVariable("PLUGBOARD_TEMPLATES") is { Length: > 0 } t ? t : Path.GetFullPath("templates");

var root = new RootCommand("Plugboard: a self-hosted, multi-tenant connectors platform.");

var up = new Command("up", "Start everything: the embedded PostgreSQL (unless DATABASE_URL is set), migrations, official templates, first owner, and the API.");
up.SetAction((_, ct) => ServeAsync(bootstrap: true, ct, HostMode.All));
root.Subcommands.Add(up);

var serve = new Command("serve", "Serve the API only (migrations must be current). Run as many as you like behind a load balancer.");
serve.SetAction((_, ct) => ServeAsync(bootstrap: false, ct, HostMode.Api));
root.Subcommands.Add(serve);

var worker = new Command("worker", "Run background workers only (executions and every other queued job). Run as many as you like, on any machine.");
worker.SetAction((_, ct) => ServeAsync(bootstrap: false, ct, HostMode.Worker));
root.Subcommands.Add(worker);

var manifestFile = new Argument<string>("manifest") { Description = "A manifest file (YAML or JSON)." };
var inputOption = new Option<string[]>("--input") { Description = "An input, key=value (repeatable).", AllowMultipleArgumentsPerToken = true };
var configOption = new Option<string[]>("--config") { Description = "A config value, key=value (repeatable).", AllowMultipleArgumentsPerToken = true };
var credentialsOption = new Option<string?>("--credentials") { Description = "A JSON file of credential fields." };
var allowOption = new Option<string?>("--allow") { Description = "CIDRs the SSRF guard lets through, e.g. 127.0.0.1/32 (default: PLUGBOARD_OUTBOUND_ALLOW)." };
var run = new Command("run", "Run a manifest locally, without a server or database, printing each request (redacted) and the output.")
{
    manifestFile, inputOption, configOption, credentialsOption, allowOption,
};
run.SetAction(async (parse, ct) =>
{
    var ssrf = ConnectorEngine.SsrfOptionsFrom(parse.GetValue(allowOption) ?? Environment.GetEnvironmentVariable("PLUGBOARD_OUTBOUND_ALLOW"),
        Environment.GetEnvironmentVariable("PLUGBOARD_OUTBOUND_PROXY"));
    using var http = new HttpClient(Plugboard.Engine.Net.SsrfGuard.CreateHandler(ssrf)) { Timeout = Timeout.InfiniteTimeSpan };
    return await LocalRun.RunAsync(parse.GetValue(manifestFile)!, parse.GetValue(inputOption) ?? [], parse.GetValue(configOption) ?? [],
        parse.GetValue(credentialsOption), http, ConnectorEngine.RunnerOptionsFrom(Configuration()), ct);
});
root.Subcommands.Add(run);

var manifest = new Command("manifest", "Work with connector manifests.");
var validateFile = new Argument<string>("file") { Description = "A manifest file (YAML or JSON)." };
var validate = new Command("validate", "Validate a manifest: every problem with its place (JSON pointer, line and column).") { validateFile };
validate.SetAction(parse => LocalRun.Validate(parse.GetValue(validateFile)!));
manifest.Subcommands.Add(validate);
root.Subcommands.Add(manifest);

var migrate = new Command("migrate", "Apply, revert or list database migrations.");
var toOption = new Option<long?>("--to") { Description = "Target migration version." };
var migrateUp = new Command("up", "Apply migrations (all, or up to --to).") { toOption };
migrateUp.SetAction(async (parse, ct) =>
{
    var settings = await DatabaseAsync(ct);
    Migrator.Up(settings, parse.GetValue(toOption));
    AnsiConsole.MarkupLine($"[green]Migrated[/] to version {Migrator.Status(settings).Where(m => m.Applied).Select(m => m.Version).DefaultIfEmpty(0).Max()}.");
    return 0;
});
var toRequired = new Option<long>("--to") { Description = "Version to revert to (0 removes everything).", Required = true };
var migrateDown = new Command("down", "Revert migrations down to --to.") { toRequired };
migrateDown.SetAction(async (parse, ct) =>
{
    var settings = await DatabaseAsync(ct);
    Migrator.Down(settings, parse.GetValue(toRequired));
    AnsiConsole.MarkupLine($"[yellow]Reverted[/] to version {parse.GetValue(toRequired)}.");
    return 0;
});
var migrateStatus = new Command("status", "List migrations and whether each is applied.");
migrateStatus.SetAction(async (_, ct) =>
{
    var table = new Table().AddColumns("version", "name", "applied");
    foreach (var m in Migrator.Status(await DatabaseAsync(ct)))
    {
        table.AddRow(m.Version.ToString(), m.Name, m.Applied ? "[green]yes[/]" : "[red]no[/]");
    }
    AnsiConsole.Write(table);
    return 0;
});
migrate.Subcommands.Add(migrateUp);
migrate.Subcommands.Add(migrateDown);
migrate.Subcommands.Add(migrateStatus);
root.Subcommands.Add(migrate);

var keys = new Command("keys", "Manage encryption keys and API keys.");
var reencryptOnly = new Option<bool>("--reencrypt-only") { Description = "Do not add a key: re-encrypt with the newest key already in the ring (for rings from PLUGBOARD_KEYS)." };
var rotate = new Command("rotate", "Add a new encryption key and re-encrypt every stored secret with it, in batches, without downtime.") { reencryptOnly };
rotate.SetAction(async (parse, ct) =>
{
    var settings = await DatabaseAsync(ct);
    var configuration = Configuration();
    var ring = KeyRing.Load(configuration, home, createIfMissing: true);
    if (!parse.GetValue(reencryptOnly))
    {
        if (configuration["PLUGBOARD_KEYS"] is { Length: > 0 })
        {
            AnsiConsole.MarkupLine("[red]The key ring comes from PLUGBOARD_KEYS.[/] Add a key there (the newest entry is used for writes), deploy it, then run `plugboard keys rotate --reencrypt-only`.");
            return 2;
        }
        ring = ring.WithNewKey();
        ring.Save(KeyRing.KeyFilePath(configuration, home));
        AnsiConsole.MarkupLine($"Added key [bold]{ring.CurrentKeyId}[/]; running processes pick it up from the key file.");
    }
    await using var db = new Db(settings);
    long total = 0;
    await AnsiConsole.Progress().StartAsync(async progress =>
    {
        var tasks = new Dictionary<string, ProgressTask>();
        total = await KeyRotation.ReencryptAsync(db, ring, p =>
        {
            if (!tasks.TryGetValue(p.Table, out var task))
            {
                tasks[p.Table] = task = progress.AddTask(p.Table, maxValue: Math.Max(1, p.Total));
            }
            task.MaxValue = Math.Max(1, p.Total);
            task.Value = p.Total == 0 ? 1 : p.Done;
        }, ct);
    });
    AnsiConsole.MarkupLine($"[green]Re-encrypted {total} secret(s)[/] with key {ring.CurrentKeyId}.");
    return 0;
});
var userOption = new Option<string>("--user") { Description = "Email of the user the key acts as.", Required = true };
var workspaceOption = new Option<string?>("--workspace") { Description = "Confine the key to this workspace." };
var roleOption = new Option<string?>("--role") { Description = "Cap the key's role in that workspace (viewer, member, admin, owner)." };
var nameOption = new Option<string>("--name") { Description = "A name to tell the key apart.", DefaultValueFactory = _ => "cli" };
var create = new Command("create", "Create an API key for a user; it is printed once.") { userOption, workspaceOption, roleOption, nameOption };
create.SetAction(async (parse, ct) =>
{
    await using var db = new Db(await DatabaseAsync(ct));
    var key = await Bootstrap.CreateKeyAsync(db, parse.GetValue(userOption)!, parse.GetValue(nameOption)!, parse.GetValue(workspaceOption), parse.GetValue(roleOption), ct);
    Console.WriteLine(key);
    await Console.Error.WriteLineAsync("Store this key now: it is not shown again.");
    return 0;
});
keys.Subcommands.Add(rotate);
keys.Subcommands.Add(create);
root.Subcommands.Add(keys);

var dbCommand = new Command("db", "The embedded PostgreSQL cluster (used by ./run, ./test and ./bench).");
var dbStart = new Command("start", "Create (if needed) and start the cluster under PLUGBOARD_HOME; prints its settings as shell exports.");
dbStart.SetAction(async (_, ct) =>
{
    var pg = new EmbeddedPostgres(home);
    await pg.StartAsync(m => Console.Error.WriteLine(m), ct);
    Console.WriteLine($"export DATABASE_URL='{pg.DatabaseUrl}'");
    Console.WriteLine($"export PLUGBOARD_DB_ROLE_PASSWORD='{pg.RolePassword}'");
    return 0;
});
var dbStop = new Command("stop", "Stop the cluster under PLUGBOARD_HOME.");
dbStop.SetAction(async (_, ct) =>
{
    await new EmbeddedPostgres(home).StopAsync(ct);
    return 0;
});
dbCommand.Subcommands.Add(dbStart);
dbCommand.Subcommands.Add(dbStop);
root.Subcommands.Add(dbCommand);

// Ctrl-C/SIGTERM: give in-flight requests and the embedded PostgreSQL time to stop cleanly.
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration
    {
        ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
        EnableDefaultExceptionHandler = false,
    });
}
catch (InvalidSettingException e)
{
    await Console.Error.WriteLineAsync($"plugboard: {e.Message}");
    return 2;
}
catch (Exception e) when (e is not OperationCanceledException)
{
    await Console.Error.WriteLineAsync($"plugboard: {e}");
    return 1;
}

IConfiguration Configuration() => new ConfigurationBuilder().AddEnvironmentVariables().Build();

// DATABASE_URL when set; otherwise the embedded cluster, started if needed.
async Task<DatabaseSettings> DatabaseAsync(CancellationToken ct)
{
    if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DATABASE_URL")))
    {
        var pg = new EmbeddedPostgres(home);
        await pg.StartAsync(m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"), ct);
        Environment.SetEnvironmentVariable("DATABASE_URL", pg.DatabaseUrl);
        Environment.SetEnvironmentVariable("PLUGBOARD_DB_ROLE_PASSWORD", pg.RolePassword);
        embedded = pg;
    }
    return DatabaseSettings.FromConfiguration(Configuration());
}

async Task<int> ServeAsync(bool bootstrap, CancellationToken ct, HostMode mode)
{
    PlugboardApp.CheckSettings(Configuration()); // before anything starts: a bad value stops here, naming the variable
    var settings = await DatabaseAsync(ct);
    if (bootstrap)
    {
        AnsiConsole.MarkupLine("[grey]Applying migrations …[/]");
        Migrator.Up(settings);
    }
    // Only the embedded default may create its key ring; elsewhere a missing ring is an error, not a fresh key.
    var listen = mode == HostMode.Worker ? Environment.GetEnvironmentVariable("PLUGBOARD_WORKER_URLS") is { Length: > 0 } w ? w : "http://127.0.0.1:0" : urls;
    var app = PlugboardApp.Build([], new PlugboardHostOptions(home, listen, CreateKeyRing: embedded is not null, Mode: mode));
    var db = app.Services.GetRequiredService<Db>();
    if (bootstrap)
    {
        var loaded = await OfficialTemplateLoader.LoadAsync(db, templatesDir, ct);
        AnsiConsole.MarkupLine($"[grey]Official templates: {loaded} added or updated from {Markup.Escape(templatesDir)}[/]");
        var email = Environment.GetEnvironmentVariable("PLUGBOARD_OWNER_EMAIL") is { Length: > 0 } e ? e : "owner@plugboard.local";
        var result = await Bootstrap.EnsureOwnerAsync(db, home, email, ct);
        if (result.Created)
        {
            AnsiConsole.MarkupLine($"Created platform owner [bold]{Markup.Escape(email)}[/] and workspace [bold]{result.WorkspaceId}[/].");
            AnsiConsole.MarkupLine($"API key (also in {Markup.Escape(Path.Combine(home, "bootstrap.key"))}, shown once): [bold yellow]{result.ApiKey}[/]");
        }
        else
        {
            AnsiConsole.MarkupLine($"[grey]The owner's API key is in {Markup.Escape(Path.Combine(home, "bootstrap.key"))}.[/]");
        }
    }
    AnsiConsole.MarkupLine(mode == HostMode.Worker
        ? "Plugboard workers are running. Ctrl-C stops them (in-flight jobs finish or return to the queue)."
        : $"Plugboard is serving on [bold]{urls}[/] (API reference: {urls}/docs){(mode == HostMode.All ? " with background workers" : "")}. Ctrl-C stops it.");
    await app.RunAsync(ct);
    // Only the process that started the embedded cluster stops it: others (a `worker` beside `up`) share it.
    if (embedded is { StartedHere: true })
    {
        AnsiConsole.MarkupLine("[grey]Stopping PostgreSQL …[/]");
        await embedded.StopAsync(CancellationToken.None);
    }
    return 0;
}

public partial class Program
{
    private static EmbeddedPostgres? embedded;
}
