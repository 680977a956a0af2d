using System.CommandLine;
using Plugboard.Data;
using Spectre.Console;

namespace Plugboard.Cli;

/// <summary>`migrate up|down|status`.</summary>
public static class MigrateCommands
{
    public static void Add(RootCommand root, CliContext cli)
    {
        var migrate = new Command("migrate", "Apply, revert or list database migrations.");
        var toOption = new Option<long?>("--to") { Description = "Target migration version." };
        var migrateUp = new Command("up", "Apply migrations (all, or up to --to).") { toOption };
        migrateUp.SetAction(async (parse, ct) =>
        {
            var settings = await cli.DatabaseAsync(ct);
            Migrator.Up(settings, parse.GetValue(toOption));
            AnsiConsole.MarkupLine($"[green]Migrated[/] to version {Migrator.Status(settings).Where(m => m.Applied).Select(m => m.Version).DefaultIfEmpty(0).Max()}.");
            return 0;
        });
        var toRequired = new Option<long>("--to") { Description = "Version to revert to (0 removes everything).", Required = true };
        var migrateDown = new Command("down", "Revert migrations down to --to.") { toRequired };
        migrateDown.SetAction(async (parse, ct) =>
        {
            var settings = await cli.DatabaseAsync(ct);
            Migrator.Down(settings, parse.GetValue(toRequired));
            AnsiConsole.MarkupLine($"[yellow]Reverted[/] to version {parse.GetValue(toRequired)}.");
            return 0;
        });
        var migrateStatus = new Command("status", "List migrations and whether each is applied.");
        migrateStatus.SetAction(async (_, ct) =>
        {
            var table = new Table().AddColumns("version", "name", "applied");
            foreach (var m in Migrator.Status(await cli.DatabaseAsync(ct)))
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
    }
}
