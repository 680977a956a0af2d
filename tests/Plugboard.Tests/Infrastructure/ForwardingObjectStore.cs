using Plugboard.Storage;

namespace Plugboard.Tests.Infrastructure;

/// <summary>A real store with one operation changed: tests that stage a race or a failure override just that one.</summary>
public abstract class ForwardingObjectStore(IObjectStore inner) : IObjectStore
{
    protected IObjectStore Inner { get; } = inner;

    public virtual Task<StoredObject> PutAsync(string key, Stream content, string contentType, CancellationToken ct) => Inner.PutAsync(key, content, contentType, ct);

    public virtual Task PutFileAsync(string key, string path, string contentType, CancellationToken ct) => Inner.PutFileAsync(key, path, contentType, ct);

    public virtual Task<Stream?> OpenReadAsync(string key, CancellationToken ct) => Inner.OpenReadAsync(key, ct);

    public virtual Task DeleteAsync(string key, CancellationToken ct) => Inner.DeleteAsync(key, ct);
}
