using System.CommandLine;
using Plugboard.Data;
using Plugboard.Features.Templates;
using Plugboard.Hosting;
using Plugboard.Security;
using Spectre.Console;

namespace Plugboard.Cli;

/// <summary>`up`, `serve` and `worker`: the long-running processes.</summary>
public static class ServeCommands
{
    public static void Add(RootCommand root, CliContext cli)
    {
        var up = new Command("up", "Start everything: the embedded PostgreSQL (unless DATABASE_URL is set), migrations, official templates, first owner, and the API.");
        up.SetAction((_, ct) => ServeAsync(cli, bootstrap: true, ct, HostMode.All));
        root.Subcommands.Add(up);

        var serve = new Command("serve", "Serve the API only (migrations must be current). Run as many as you like behind a load balancer.");
        serve.SetAction((_, ct) => ServeAsync(cli, bootstrap: false, ct, HostMode.Api));
        root.Subcommands.Add(serve);

        var worker = new Command("worker", "Run background workers only (executions and every other queued job). Run as many as you like, on any machine.");
        worker.SetAction((_, ct) => ServeAsync(cli, bootstrap: false, ct, HostMode.Worker));
        root.Subcommands.Add(worker);
    }

    private static async Task<int> ServeAsync(CliContext cli, bool bootstrap, CancellationToken ct, HostMode mode)
    {
        PlugboardApp.CheckSettings(cli.Configuration(), cli.Home); // before anything starts: a bad value stops here, naming the variable
        var settings = await cli.DatabaseAsync(ct);
        if (bootstrap)
        {
            AnsiConsole.MarkupLine("[grey]Applying migrations …[/]");
            Migrator.Up(settings);
        }
        // Only the embedded default may create its key ring; elsewhere a missing ring is an error, not a fresh key.
        var listen = mode == HostMode.Worker ? Environment.GetEnvironmentVariable("PLUGBOARD_WORKER_URLS") is { Length: > 0 } w ? w : "http://127.0.0.1:0" : cli.Urls;
        var app = PlugboardApp.Build([], new PlugboardHostOptions(cli.Home, listen, CreateKeyRing: cli.Embedded is not null, Mode: mode));
        var db = app.Services.GetRequiredService<Db>();
        await app.Services.GetRequiredService<Features.Documents.DocumentPipelineOptions>().CheckSearchConfigurationAsync(db, ct);
        if (bootstrap)
        {
            var loaded = await OfficialTemplateLoader.LoadAsync(db, cli.TemplatesDir, ct);
            AnsiConsole.MarkupLine($"[grey]Official templates: {loaded} added or updated from {Markup.Escape(cli.TemplatesDir)}[/]");
            var email = Environment.GetEnvironmentVariable("PLUGBOARD_OWNER_EMAIL") is { Length: > 0 } e ? e : "owner@plugboard.local";
            var result = await Bootstrap.EnsureOwnerAsync(db, cli.Home, email, ct);
            if (result.Created)
            {
                AnsiConsole.MarkupLine($"Created platform owner [bold]{Markup.Escape(email)}[/] and workspace [bold]{result.WorkspaceId}[/].");
                AnsiConsole.MarkupLine($"API key (also in {Markup.Escape(Path.Combine(cli.Home, "bootstrap.key"))}, shown once): [bold yellow]{result.ApiKey}[/]");
            }
            else
            {
                AnsiConsole.MarkupLine($"[grey]The owner's API key is in {Markup.Escape(Path.Combine(cli.Home, "bootstrap.key"))}.[/]");
            }
        }
        AnsiConsole.MarkupLine(mode == HostMode.Worker
            ? "Plugboard workers are running. Ctrl-C stops them (in-flight jobs finish or return to the queue)."
            : $"Plugboard is serving on [bold]{cli.Urls}[/] (API reference: {cli.Urls}/docs){(mode == HostMode.All ? " with background workers" : "")}. Ctrl-C stops it.");
        await app.RunAsync(ct);
        // Only the process that started the embedded cluster stops it: others (a `worker` beside `up`) share it.
        if (cli.Embedded is { StartedHere: true })
        {
            AnsiConsole.MarkupLine("[grey]Stopping PostgreSQL …[/]");
            await cli.Embedded.StopAsync(CancellationToken.None);
        }
        return 0;
    }
}
