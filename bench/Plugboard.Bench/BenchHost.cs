using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Security;

namespace Plugboard.Bench;

/// <summary>Plugboard hosted in the benchmark's process on a free loopback port, against the bench database, quiet.</summary>
public static class BenchHost
{
    public static WebApplication Build(DatabaseSettings settings, string home, HostMode mode, IReadOnlyDictionary<string, string?> overrides)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = settings.RolePassword,
            ["PLUGBOARD_KEYS"] = KeyRing.Generate().ToJson(),
            ["PLUGBOARD_LOG_LEVEL"] = "Warning",
        };
        foreach (var (name, value) in overrides)
        {
            configuration[name] = value;
        }
        return PlugboardApp.Build([], new PlugboardHostOptions(home, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: mode), configuration);
    }

    /// <summary>Where a started host listens.</summary>
    public static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
}
