using System.Text.Json;
using System.Xml.Linq;

namespace Plugboard.Tests;

/// <summary>
/// The README says the benchmarks that host Plugboard's code in their own process run it as the plugboard executable
/// does: the runtime settings that change how that code performs (garbage collector, dynamic PGO) are the same.
/// </summary>
public sealed class BenchRuntimeTests
{
    [Fact]
    public void The_benchmark_process_runs_with_the_plugboard_executables_gc_and_pgo_settings()
    {
        // plugboard.runtimeconfig.json is copied beside the tests with the plugboard executable.
        using var runtimeConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "plugboard.runtimeconfig.json")));
        var properties = runtimeConfig.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        var serverGc = properties.TryGetProperty("System.GC.Server", out var gc) && gc.GetBoolean();
        var pgo = !properties.TryGetProperty("System.Runtime.TieredPGO", out var tieredPgo) || tieredPgo.GetBoolean();

        var bench = XDocument.Load(Path.Combine(RepositoryRoot(), "bench", "Plugboard.Bench", "Plugboard.Bench.csproj"));
        bool? Property(string name) => bench.Descendants(name).Select(e => (bool?)bool.Parse(e.Value)).LastOrDefault();
        // The bench project is not a web project: without the property it would run the workstation collector.
        Assert.Equal(serverGc, Property("ServerGarbageCollection") ?? false);
        Assert.Equal(pgo, Property("TieredPGO") ?? true);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "bench", "Plugboard.Bench", "Plugboard.Bench.csproj")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("The repository root (with bench/Plugboard.Bench) was not found above the test directory.");
    }
}
