using System.CommandLine;
using Plugboard.Hosting;

namespace Plugboard.Cli;

/// <summary>`run` and `manifest validate`: manifests on this machine, without a server or database.</summary>
public static class LocalCommands
{
    public static void Add(RootCommand root, CliContext cli)
    {
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
                parse.GetValue(credentialsOption), http, ConnectorEngine.RunnerOptionsFrom(cli.Configuration()), ct);
        });
        root.Subcommands.Add(run);

        var manifest = new Command("manifest", "Work with connector manifests.");
        var validateFile = new Argument<string>("file") { Description = "A manifest file (YAML or JSON)." };
        var validate = new Command("validate", "Validate a manifest: every problem with its place (JSON pointer, line and column).") { validateFile };
        validate.SetAction(parse => LocalRun.Validate(parse.GetValue(validateFile)!));
        manifest.Subcommands.Add(validate);
        root.Subcommands.Add(manifest);
    }
}
