using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

/// <summary>What a manifest document may be at most: a document past any of these is refused before it is read whole.</summary>
public static class ManifestLimits
{
    public const int MaxTextChars = 512 * 1024;
    public const int MaxDepth = 64;
    public const int MaxNodes = 50_000;
}

/// <summary>A manifest refused for its size or shape (a limit, an anchor or an alias), at <see cref="Pointer"/>.</summary>
internal sealed class ManifestLimitException(Mark start, string pointer, string message) : YamlException(start, start, message)
{
    public string Pointer { get; } = pointer;
}
