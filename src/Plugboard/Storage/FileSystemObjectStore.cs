namespace Plugboard.Storage;

/// <summary>
/// Objects as files under a root directory (the embedded default: <c>$PLUGBOARD_HOME/objects</c>). A put writes a
/// temporary file beside the target and renames it into place, so a crash leaves either the old object or the new one,
/// never half of one; leftover temporary files are never read.
/// </summary>
public sealed class FileSystemObjectStore(string root) : IObjectStore
{
    public async Task<StoredObject> PutAsync(string key, Stream content, string contentType, CancellationToken ct)
    {
        var path = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = $"{path}.{Guid.NewGuid():N}.partial";
        try
        {
            using var hashing = new HashingStream(content);
            await using (var file = new FileStream(temporary, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous }))
            {
                await hashing.CopyToAsync(file, ct);
                await file.FlushAsync(ct);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
            return new StoredObject(hashing.BytesRead, hashing.Sha256());
        }
        finally
        {
            File.Delete(temporary); // gone already when the move succeeded
        }
    }

    /// <summary>
    /// Moves the file beside its target under a temporary name (a rename on the same filesystem; .NET copies across
    /// filesystems), flushes it to disk, then renames it into place — atomic either way.
    /// </summary>
    public Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
    {
        var target = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = $"{target}.{Guid.NewGuid():N}.partial";
        try
        {
            File.Move(path, temporary);
            using (var file = new FileStream(temporary, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        finally
        {
            File.Delete(temporary); // gone already when the last move succeeded
        }
        return Task.CompletedTask;
    }

    public Task<Stream?> OpenReadAsync(string key, CancellationToken ct)
    {
        var path = PathOf(key);
        try
        {
            return Task.FromResult<Stream?>(new FileStream(path, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.Asynchronous }));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
    }

    public Task DeleteAsync(string key, CancellationToken ct)
    {
        try
        {
            File.Delete(PathOf(key));
        }
        catch (DirectoryNotFoundException)
        {
            // Never stored (its workspace's folder does not even exist): deleted already.
        }
        return Task.CompletedTask;
    }

    private string PathOf(string key) => Path.Combine(root, ObjectKeys.Check(key).Replace('/', Path.DirectorySeparatorChar));
}
