using Plugboard.Hosting;

namespace Plugboard.Storage;

/// <summary>
/// The connector-imports bucket as configured: where objects live (the filesystem under PLUGBOARD_HOME, or an
/// S3-compatible service when PLUGBOARD_S3_ENDPOINT is set), the largest file it takes and the media types it accepts.
/// </summary>
public sealed record BucketSettings(long MaxFileBytes, IReadOnlyList<string> AllowedTypes, string? FileSystemRoot, S3Location? S3)
{
    public const long DefaultMaxFileBytes = 100L * 1024 * 1024;

    public static BucketSettings FromConfiguration(IConfiguration configuration, string home)
    {
        var maxMiB = Settings.Number(configuration, "PLUGBOARD_UPLOAD_MAX_MB", DefaultMaxFileBytes / 1024.0 / 1024.0, 0.001, 1024 * 1024);
        var allowed = configuration["PLUGBOARD_UPLOAD_ALLOWED_TYPES"] is { Length: > 0 } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t => t.ToLowerInvariant()).Distinct().ToList()
            : MediaTypes.DefaultAllowed.ToList();
        foreach (var type in allowed)
        {
            if (!MediaTypes.Known.Contains(type) || type == MediaTypes.Executable)
            {
                throw new InvalidSettingException(
                    $"PLUGBOARD_UPLOAD_ALLOWED_TYPES must list only these types: {string.Join(", ", MediaTypes.Known.Where(t => t != MediaTypes.Executable))}; '{type}' is not one.");
            }
        }
        var maxBytes = (long)(maxMiB * 1024 * 1024);
        if (configuration["PLUGBOARD_S3_ENDPOINT"] is not { Length: > 0 } endpoint)
        {
            return new BucketSettings(maxBytes, allowed, Path.Combine(home, "objects"), null);
        }
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new InvalidSettingException($"PLUGBOARD_S3_ENDPOINT must be an http or https URL; it is '{endpoint}'.");
        }
        string Required(string name) => configuration[name] is { Length: > 0 } value
            ? value
            : throw new InvalidSettingException($"{name} must be set when PLUGBOARD_S3_ENDPOINT is.");
        var s3 = new S3Location(uri, configuration["PLUGBOARD_S3_REGION"] is { Length: > 0 } region ? region : "us-east-1",
            configuration["PLUGBOARD_S3_BUCKET"] is { Length: > 0 } bucket ? bucket : "connector-imports",
            Required("PLUGBOARD_S3_ACCESS_KEY_ID"), Required("PLUGBOARD_S3_SECRET_ACCESS_KEY"),
            Settings.Bool(configuration, "PLUGBOARD_S3_PATH_STYLE", true));
        return new BucketSettings(maxBytes, allowed, null, s3);
    }

    public IObjectStore CreateStore() => S3 is not null ? new S3ObjectStore(S3) : new FileSystemObjectStore(FileSystemRoot!);

    /// <summary>The size limit as people read it.</summary>
    public string MaxFileSizeText => MaxFileBytes >= 1024 * 1024 ? $"{MaxFileBytes / 1024.0 / 1024.0:0.##} MiB" : $"{MaxFileBytes / 1024.0:0.##} KiB";
}
