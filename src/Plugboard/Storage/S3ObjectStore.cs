using System.Buffers;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace Plugboard.Storage;

/// <summary>Where an S3-compatible bucket is and how to sign for it.</summary>
public sealed record S3Location(Uri Endpoint, string Region, string Bucket, string AccessKeyId, string SecretAccessKey, bool ForcePathStyle = true)
{
    /// <summary>Never the secret: a record would print every member.</summary>
    public override string ToString() => $"S3Location {{ Endpoint = {Endpoint}, Region = {Region}, Bucket = {Bucket}, AccessKeyId = {AccessKeyId} }}";
}

/// <summary>
/// Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, …). Content is streamed in parts of
/// <see cref="PartBytes"/>: one PUT when it fits in one part, a multipart upload otherwise (aborted on failure, so no
/// half object is ever visible). Checksums are sent only when required, which non-AWS servers need.
/// </summary>
public sealed class S3ObjectStore : IObjectStore, IDisposable
{
    public const int PartBytes = 8 * 1024 * 1024;

    private readonly AmazonS3Client _client;
    private readonly string _bucket;

    public S3ObjectStore(S3Location location)
    {
        ArgumentNullException.ThrowIfNull(location);
        _bucket = location.Bucket;
        _client = new AmazonS3Client(new BasicAWSCredentials(location.AccessKeyId, location.SecretAccessKey), new AmazonS3Config
        {
            ServiceURL = location.Endpoint.ToString(),
            AuthenticationRegion = location.Region,
            ForcePathStyle = location.ForcePathStyle,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        });
    }

    public async Task<StoredObject> PutAsync(string key, Stream content, string contentType, CancellationToken ct)
    {
        ObjectKeys.Check(key);
        using var hashing = new HashingStream(content);
        var buffer = ArrayPool<byte>.Shared.Rent(PartBytes);
        try
        {
            var length = await FillAsync(hashing, buffer, ct);
            if (length < PartBytes)
            {
                using var single = new MemoryStream(buffer, 0, length, writable: false);
                await _client.PutObjectAsync(new PutObjectRequest { BucketName = _bucket, Key = key, InputStream = single, ContentType = contentType, AutoCloseStream = false }, ct);
                return new StoredObject(hashing.BytesRead, hashing.Sha256());
            }
            var upload = await _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _bucket, Key = key, ContentType = contentType }, ct);
            try
            {
                var parts = new List<PartETag>();
                for (var number = 1; length > 0; number++, length = await FillAsync(hashing, buffer, ct))
                {
                    using var part = new MemoryStream(buffer, 0, length, writable: false);
                    var uploaded = await _client.UploadPartAsync(new UploadPartRequest
                    {
                        BucketName = _bucket,
                        Key = key,
                        UploadId = upload.UploadId,
                        PartNumber = number,
                        InputStream = part,
                        PartSize = length,
                    }, ct);
                    parts.Add(new PartETag(number, uploaded.ETag));
                }
                await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest { BucketName = _bucket, Key = key, UploadId = upload.UploadId, PartETags = parts }, ct);
            }
            catch
            {
                try
                {
                    await _client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _bucket, Key = key, UploadId = upload.UploadId }, CancellationToken.None);
                }
                catch (AmazonServiceException)
                {
                    // Best effort: an unfinished multipart upload is never a visible object (and some servers cannot abort
                    // one); the failure that matters is the one being rethrown.
                }
                throw;
            }
            return new StoredObject(hashing.BytesRead, hashing.Sha256());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public async Task PutFileAsync(string key, string path, string contentType, CancellationToken ct)
    {
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.Asynchronous | FileOptions.SequentialScan))
        {
            await PutAsync(key, file, contentType, ct);
        }
        File.Delete(path);
    }

    public async Task<Stream?> OpenReadAsync(string key, CancellationToken ct)
    {
        ObjectKeys.Check(key);
        try
        {
            var response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _bucket, Key = key }, ct);
            return response.ResponseStream;
        }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task DeleteAsync(string key, CancellationToken ct)
    {
        ObjectKeys.Check(key);
        await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _bucket, Key = key }, ct);
    }

    public void Dispose() => _client.Dispose();

    private static async Task<int> FillAsync(Stream source, byte[] buffer, CancellationToken ct)
    {
        var filled = 0;
        while (filled < PartBytes)
        {
            var read = await source.ReadAsync(buffer.AsMemory(filled, PartBytes - filled), ct);
            if (read == 0)
            {
                break;
            }
            filled += read;
        }
        return filled;
    }
}
