using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Plugboard.Storage;

/// <summary>What a stored object is: its size and the SHA-256 of its bytes (lower-case hex), computed while streaming.</summary>
public sealed record StoredObject(long Size, string Sha256);

/// <summary>
/// The <c>connector-imports</c> bucket: one interface, a filesystem backend (the embedded default) and an S3-compatible
/// one, held to the same contract by the same tests. Objects are written whole or not at all, and streamed: no backend
/// holds a whole file in memory. Keys come from <see cref="ObjectKeys"/> only, never from names a user chose.
/// </summary>
public interface IObjectStore
{
    /// <summary>Stores <paramref name="content"/> under <paramref name="key"/> (replacing what was there).</summary>
    Task<StoredObject> PutAsync(string key, Stream content, string contentType, CancellationToken ct);

    /// <summary>
    /// Stores the local file at <paramref name="path"/> under <paramref name="key"/> and takes it over: the file is gone
    /// afterwards (moved into place by the filesystem backend — no second copy of the bytes — or uploaded and deleted).
    /// </summary>
    Task PutFileAsync(string key, string path, string contentType, CancellationToken ct);

    /// <summary>The object's bytes, or null when there is none.</summary>
    Task<Stream?> OpenReadAsync(string key, CancellationToken ct);

    /// <summary>Removes the object; removing one that does not exist is not an error.</summary>
    Task DeleteAsync(string key, CancellationToken ct);
}

/// <summary>
/// Object keys, built from a workspace id and generated ids only, so no key can climb out of its workspace's prefix
/// (a user-supplied file name is metadata, never part of a key).
/// </summary>
public static partial class ObjectKeys
{
    public static string Document(string workspaceId, Guid documentId) =>
        $"workspaces/{CheckWorkspace(workspaceId)}/documents/{documentId:N}";

    /// <summary>Refuses anything that is not a key this class makes (the stores check every key they are given).</summary>
    public static string Check(string key) =>
        KeyPattern().IsMatch(key) ? key : throw new ArgumentException($"'{key}' is not an object key Plugboard makes.", nameof(key));

    private static string CheckWorkspace(string workspaceId) =>
        WorkspacePattern().IsMatch(workspaceId) ? workspaceId : throw new ArgumentException($"'{workspaceId}' is not a workspace id.", nameof(workspaceId));

    [GeneratedRegex("^[a-z0-9_]{1,64}$")]
    private static partial Regex WorkspacePattern();

    [GeneratedRegex("^workspaces/[a-z0-9_]{1,64}/documents/[0-9a-f]{32}$")]
    private static partial Regex KeyPattern();
}

/// <summary>Passes a stream through while hashing and counting it.</summary>
internal sealed class HashingStream(Stream inner) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public long BytesRead { get; private set; }

    public string Sha256() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        _hash.AppendData(buffer[..read]);
        BytesRead += read;
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        _hash.AppendData(buffer.Span[..read]);
        BytesRead += read;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => BytesRead; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }
}
