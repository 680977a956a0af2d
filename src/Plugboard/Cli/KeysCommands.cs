using System.CommandLine;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Security;
using Spectre.Console;

namespace Plugboard.Cli;

/// <summary>`keys rotate` and `keys create`: encryption keys and API keys.</summary>
public static class KeysCommands
{
    public static void Add(RootCommand root, CliContext cli)
    {
        var keys = new Command("keys", "Manage encryption keys and API keys.");
        var reencryptOnly = new Option<bool>("--reencrypt-only") { Description = "Do not add a key: re-encrypt with the newest key already in the ring (for rings from PLUGBOARD_KEYS)." };
        var rotate = new Command("rotate", "Add a new encryption key and re-encrypt every stored secret with it, in batches, without downtime.") { reencryptOnly };
        rotate.SetAction(async (parse, ct) =>
        {
            var settings = await cli.DatabaseAsync(ct);
            var configuration = cli.Configuration();
            var ring = KeyRing.Load(configuration, cli.Home, createIfMissing: true);
            if (!parse.GetValue(reencryptOnly))
            {
                if (configuration["PLUGBOARD_KEYS"] is { Length: > 0 })
                {
                    AnsiConsole.MarkupLine("[red]The key ring comes from PLUGBOARD_KEYS.[/] Add a key there (the newest entry is used for writes), deploy it, then run `plugboard keys rotate --reencrypt-only`.");
                    return 2;
                }
                ring = ring.WithNewKey();
                ring.Save(KeyRing.KeyFilePath(configuration, cli.Home));
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
            await using var db = new Db(await cli.DatabaseAsync(ct));
            var key = await Bootstrap.CreateKeyAsync(db, parse.GetValue(userOption)!, parse.GetValue(nameOption)!, parse.GetValue(workspaceOption), parse.GetValue(roleOption), ct);
            Console.WriteLine(key);
            await Console.Error.WriteLineAsync("Store this key now: it is not shown again.");
            return 0;
        });
        keys.Subcommands.Add(rotate);
        keys.Subcommands.Add(create);
        root.Subcommands.Add(keys);
    }
}
