using System.CommandLine;
using Plugboard.Data;
using Plugboard.Hosting;

namespace Plugboard.Cli;

/// <summary>`db start|stop`: the embedded PostgreSQL cluster.</summary>
public static class DbCommands
{
    public static void Add(RootCommand root, CliContext cli)
    {
        var dbCommand = new Command("db", "The embedded PostgreSQL cluster (used by ./run, ./test and ./bench).");
        var dbStart = new Command("start", "Create (if needed) and start the cluster under PLUGBOARD_HOME; prints its settings as shell exports.");
        dbStart.SetAction(async (_, ct) =>
        {
            var pg = new EmbeddedPostgres(cli.Home);
            await pg.StartAsync(m => Console.Error.WriteLine(m), ct);
            Console.WriteLine($"export DATABASE_URL='{pg.DatabaseUrl}'");
            Console.WriteLine($"export PLUGBOARD_DB_ROLE_PASSWORD='{pg.RolePassword}'");
            return 0;
        });
        var dbStop = new Command("stop", "Stop the cluster under PLUGBOARD_HOME.");
        dbStop.SetAction(async (_, ct) =>
        {
            await new EmbeddedPostgres(cli.Home).StopAsync(ct);
            return 0;
        });
        dbCommand.Subcommands.Add(dbStart);
        dbCommand.Subcommands.Add(dbStop);
        root.Subcommands.Add(dbCommand);
    }
}
