using System.Text.RegularExpressions;
using Plugboard.Hosting;
using Plugboard.Jobs;
using Plugboard.Storage;

namespace Plugboard.Features.Documents;

/// <summary>
/// How documents are processed: chunk sizes, the text search configuration chunks are indexed with
/// (PLUGBOARD_SEARCH_CONFIG, default <c>english</c>), where uploads are spooled, and how many documents of one workspace
/// are processed at once (PLUGBOARD_DOCUMENT_CONCURRENCY).
/// </summary>
public sealed partial record DocumentPipelineOptions(ChunkingOptions Chunking, string SearchConfiguration, string TemporaryDirectory, int WorkspaceConcurrency,
    long MaxUncompressedBytes)
{
    public static DocumentPipelineOptions FromConfiguration(IConfiguration configuration, string home, BucketSettings bucket)
    {
        var search = configuration["PLUGBOARD_SEARCH_CONFIG"] is { Length: > 0 } value ? value.Trim() : "english";
        if (!ConfigurationName().IsMatch(search))
        {
            throw new InvalidSettingException($"PLUGBOARD_SEARCH_CONFIG must name a PostgreSQL text search configuration (such as english, simple, german); it is '{search}'.");
        }
        return new DocumentPipelineOptions(ChunkingOptions.FromConfiguration(configuration), search, Path.Combine(home, "tmp", "uploads"),
            Settings.Int(configuration, "PLUGBOARD_DOCUMENT_CONCURRENCY", 4, 1, 1000),
            Math.Clamp(bucket.MaxFileBytes * 20, 64L * 1024 * 1024, 512L * 1024 * 1024));
    }

    /// <summary>Stops the start (exit 2) when the database answers that it has no such text search configuration.</summary>
    public async Task CheckSearchConfigurationAsync(Plugboard.Data.Db db, CancellationToken ct)
    {
        var name = SearchConfiguration;
        bool exists;
        try
        {
            await using var connection = await db.Service.OpenConnectionAsync(ct);
            exists = await Dapper.SqlMapper.ExecuteScalarAsync<bool>(connection, new Dapper.CommandDefinition(
                "SELECT EXISTS (SELECT FROM pg_ts_config WHERE cfgname = @name)", new { name }, cancellationToken: ct));
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            return; // the database is not reachable yet: the process starts and /readyz says why it is not ready
        }
        if (!exists)
        {
            throw new InvalidSettingException(
                $"PLUGBOARD_SEARCH_CONFIG must name a text search configuration of the database; '{name}' is not one (SELECT cfgname FROM pg_ts_config lists them).");
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex ConfigurationName();
}

/// <summary>The job that takes one document through extraction and chunking; at most N per workspace run at once.</summary>
public static class DocumentJob
{
    public const string Kind = "document";

    public sealed record Payload(string WorkspaceId, Guid DocumentId, bool Force = false);

    public static JobRequest Request(string workspaceId, Guid documentId, bool force = false, int concurrency = 4) => new(
        Kind: Kind,
        WorkspaceId: workspaceId,
        Payload: new Payload(workspaceId, documentId, force),
        MaxAttempts: 5,
        ConcurrencyKey: $"documents:{workspaceId}",
        ConcurrencyLimit: concurrency);
}
