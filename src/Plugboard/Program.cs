using System.CommandLine;
using Plugboard.Cli;
using Plugboard.Hosting;

var cli = new CliContext();
var root = new RootCommand("Plugboard: a self-hosted, multi-tenant connectors platform.");
ServeCommands.Add(root, cli);
LocalCommands.Add(root, cli);
MigrateCommands.Add(root, cli);
KeysCommands.Add(root, cli);
DbCommands.Add(root, cli);
UploadCommand.Add(root, cli);

// Ctrl-C/SIGTERM: give in-flight requests and the embedded PostgreSQL time to stop cleanly.
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration
    {
        ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
        EnableDefaultExceptionHandler = false,
    });
}
catch (Exception e) when (e is InvalidSettingException or Plugboard.Security.KeyRingMissingException)
{
    await Console.Error.WriteLineAsync($"plugboard: {e.Message}");
    return 2;
}
catch (Exception e) when (e is not OperationCanceledException)
{
    await Console.Error.WriteLineAsync($"plugboard: {e}");
    return 1;
}
