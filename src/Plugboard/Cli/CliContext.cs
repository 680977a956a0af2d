using Plugboard.Data;
using Plugboard.Hosting;
using Spectre.Console;

namespace Plugboard.Cli;

/// <summary>What every verb shares: where the home is, where to listen, and the database (an embedded cluster when
/// DATABASE_URL is unset, started once per process).</summary>
public sealed class CliContext
{
    public string Home { get; } = Path.GetFullPath(Environment.GetEnvironmentVariable("PLUGBOARD_HOME") is { Length: > 0 } h ? h : ".plugboard");
    public string Urls { get; } = Environment.GetEnvironmentVariable("PLUGBOARD_URLS") is { Length: > 0 } u ? u : "http://127.0.0.1:5080";
    public string TemplatesDir { get; } = Environment.GetEnvironmentVariable("PLUGBOARD_TEMPLATES") is { Length: > 0 } t ? t : Path.GetFullPath("templates");

    /// <summary>The embedded cluster this process uses, when it uses one.</summary>
    public EmbeddedPostgres? Embedded { get; private set; }

    public IConfiguration Configuration() => new ConfigurationBuilder().AddEnvironmentVariables().Build();

    /// <summary>DATABASE_URL when set; otherwise the embedded cluster, started if needed.</summary>
    public async Task<DatabaseSettings> DatabaseAsync(CancellationToken ct)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DATABASE_URL")))
        {
            var pg = new EmbeddedPostgres(Home);
            await pg.StartAsync(m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"), ct);
            // Later reads of the configuration (the host's own) see the embedded cluster as DATABASE_URL.
            Environment.SetEnvironmentVariable("DATABASE_URL", pg.DatabaseUrl);
            Environment.SetEnvironmentVariable("PLUGBOARD_DB_ROLE_PASSWORD", pg.RolePassword);
            Embedded = pg;
        }
        return DatabaseSettings.FromConfiguration(Configuration());
    }
}
