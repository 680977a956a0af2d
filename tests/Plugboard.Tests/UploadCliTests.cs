using System.Diagnostics;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>`plugboard upload` against the running server: a folder becomes a batch, the summary tells each outcome, a rerun skips what is there.</summary>
[Collection(ServerCollection.Name)]
public sealed class UploadCliTests(PlugboardServer server)
{
    private static Task<(int Exit, string Output)> PlugboardAsync(params string[] args) => PlugboardWithKeyAsync(null, args);

    private static async Task<(int Exit, string Output)> PlugboardWithKeyAsync(string? apiKey, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugboard.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["NO_COLOR"] = "1";
        start.Environment["COLUMNS"] = "400";
        start.Environment.Remove("PLUGBOARD_API_KEY");
        if (apiKey is not null)
        {
            start.Environment["PLUGBOARD_API_KEY"] = apiKey;
        }
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output + await error);
    }

    [Fact]
    public async Task A_folder_uploads_as_a_batch_with_a_summary_and_a_rerun_skips_what_is_there()
    {
        var team = await server.TeamAsync();
        var folder = Directory.CreateTempSubdirectory("plugboard-upload").FullName;
        Directory.CreateDirectory(Path.Combine(folder, "calls"));
        Directory.CreateDirectory(Path.Combine(folder, ".git"));
        await File.WriteAllTextAsync(Path.Combine(folder, "guide.md"), "# Guide\n\nHow the harbour works.");
        await File.WriteAllTextAsync(Path.Combine(folder, "notes.txt"), "Notes on the tide tables.");
        await File.WriteAllTextAsync(Path.Combine(folder, "calls", "review.vtt"), SampleDocuments.TeamsVtt);
        File.Copy("/bin/true", Path.Combine(folder, "tool.pdf"));
        await File.WriteAllTextAsync(Path.Combine(folder, ".hidden.txt"), "never uploaded");
        await File.WriteAllTextAsync(Path.Combine(folder, ".git", "config"), "never uploaded");
        string[] args = ["upload", folder, "--workspace", team.Id, "--url", server.BaseAddress.ToString(), "--key", team.Member.Key];

        var (exit, output) = await PlugboardAsync([.. args, "--wait"]);
        Assert.True(exit == 1, output); // one file was refused
        Assert.Contains("accepted   3", output, StringComparison.Ordinal);
        Assert.Contains("refused    1", output, StringComparison.Ordinal);
        Assert.Contains("tool.pdf: The file is an executable program", output, StringComparison.Ordinal);
        Assert.Contains("Processed: 3, failed: 1", output, StringComparison.Ordinal);
        Assert.Equal(3, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));
        Assert.Equal(1, await server.OwnerScalarAsync<long>("SELECT count(*) FROM file_upload_batches WHERE workspace_id = @ws AND status = 'completed_with_errors'", new { ws = team.Id }));

        await File.WriteAllTextAsync(Path.Combine(folder, "notes.txt"), "Notes on the tide tables, corrected.");
        (exit, output) = await PlugboardAsync(args);
        Assert.True(exit == 1, output);
        Assert.Contains("accepted   1", output, StringComparison.Ordinal); // the changed file only
        Assert.Contains("skipped    2 (already in the workspace)", output, StringComparison.Ordinal);
        Assert.Contains("refused    1", output, StringComparison.Ordinal);
        Assert.Equal(4, await server.OwnerScalarAsync<long>("SELECT count(*) FROM imported_documents WHERE workspace_id = @ws", new { ws = team.Id }));

        // The key may come from PLUGBOARD_API_KEY instead of --key.
        (exit, output) = await PlugboardWithKeyAsync(team.Member.Key, "upload", folder, "--workspace", team.Id, "--url", server.BaseAddress.ToString());
        Assert.True(exit == 1, output);
        Assert.Contains("skipped    3 (already in the workspace)", output, StringComparison.Ordinal);

        (exit, output) = await PlugboardAsync("upload", folder, "--workspace", team.Id, "--url", "not a url", "--key", team.Member.Key);
        Assert.Equal(2, exit);
        Assert.Contains("is not a URL to reach the server", output, StringComparison.Ordinal);

        (exit, output) = await PlugboardAsync("upload", folder, "--workspace", team.Id, "--url", server.BaseAddress.ToString(), "--key", "pb_not_a_real_key");
        Assert.Equal(2, exit);
        Assert.Contains("The API key was refused", output, StringComparison.Ordinal);
        (exit, output) = await PlugboardAsync("upload", folder, "--workspace", team.Id, "--url", server.BaseAddress.ToString(), "--key", team.Viewer.Key);
        Assert.Equal(2, exit);
        Assert.Contains("member role", output, StringComparison.Ordinal);
    }
}
