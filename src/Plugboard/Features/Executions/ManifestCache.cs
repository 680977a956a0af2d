using System.Text.Json.Nodes;
using Microsoft.Extensions.Caching.Memory;
using Plugboard.Engine.Manifests;

namespace Plugboard.Features.Executions;

/// <summary>
/// Parsed manifests by connector row version (id + row_version): parsing validates every template and path, and the
/// engine caches compiled templates and retry pipelines on the parsed manifest, so a connector that runs often
/// is parsed once per change rather than once per execution.
/// </summary>
public sealed class ManifestCache
{
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 2_000 });

    public ManifestParseResult Get(string version, string manifestJson) =>
        _cache.GetOrCreate(version, entry =>
        {
            entry.Size = 1;
            entry.SlidingExpiration = TimeSpan.FromMinutes(10);
            return ManifestParser.Parse(JsonNode.Parse(manifestJson));
        })!;
}
