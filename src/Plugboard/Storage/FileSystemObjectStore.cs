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

    /// <summary>Flushes the file to disk, then renames it into place (copying only when it lies on another filesystem).</summary>
    public async Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
    {
        var target = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            file.Flush(flushToDisk: true);
        }
        try
        {
            File.Move(path, target, overwrite: true);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another filesystem (PLUGBOARD_HOME's tmp mounted apart): copy atomically, then drop the original.
            await using (var source = File.OpenRead(path))
            {
                await PutAsync(key, source, contentType, ct);
            }
            File.Delete(path);
        }
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
        File.Delete(PathOf(key));
        return Task.CompletedTask;
    }

    private string PathOf(string key) => Path.Combine(root, ObjectKeys.Check(key).Replace('/', Path.DirectorySeparatorChar));
}
