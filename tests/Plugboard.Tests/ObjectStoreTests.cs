using System.Security.Cryptography;
using Plugboard.Storage;

namespace Plugboard.Tests;

/// <summary>
/// One contract, both backends: the filesystem store and the S3 store against the real S3-compatible server that
/// ./test starts on 127.0.0.1 (PLUGBOARD_TEST_S3_URL).
/// </summary>
public sealed class ObjectStoreTests
{
    public static TheoryData<string> Backends => ["filesystem", "s3"];

    private static IObjectStore Create(string backend) => backend switch
    {
        "filesystem" => new FileSystemObjectStore(Directory.CreateTempSubdirectory("plugboard-objects").FullName),
        _ => new S3ObjectStore(new S3Location(
            new Uri(Environment.GetEnvironmentVariable("PLUGBOARD_TEST_S3_URL")
                    ?? throw new InvalidOperationException("PLUGBOARD_TEST_S3_URL is not set: run the tests with ./test, which starts the S3 server.")),
            "us-east-1", "connector-imports", "S3RVER", "S3RVER")),
    };

    private static string NewKey() => ObjectKeys.Document("ws_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)), Guid.NewGuid());

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task Objects_round_trip_with_their_size_and_hash_small_and_over_one_part(string backend)
    {
        var store = Create(backend);
        foreach (var size in new[] { 0, 1, 1000, S3ObjectStore.PartBytes * 2 + 12345 })
        {
            var bytes = RandomNumberGenerator.GetBytes(size);
            var key = NewKey();
            // A stream that cannot seek and tells no length, as an upload body is.
            var stored = await store.PutAsync(key, new ForwardOnlyStream(bytes), "application/octet-stream", CancellationToken.None);
            Assert.Equal(size, stored.Size);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), stored.Sha256);
            await using var read = await store.OpenReadAsync(key, CancellationToken.None);
            Assert.NotNull(read);
            using var copy = new MemoryStream();
            await read.CopyToAsync(copy);
            Assert.True(bytes.AsSpan().SequenceEqual(copy.ToArray()), $"{backend}: {size} bytes came back different");
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task A_stored_file_is_taken_over_and_reads_back_the_same(string backend)
    {
        var store = Create(backend);
        foreach (var size in new[] { 1, S3ObjectStore.PartBytes + 7 })
        {
            var bytes = RandomNumberGenerator.GetBytes(size);
            var path = Path.Combine(Path.GetTempPath(), $"put-file-{Guid.NewGuid():N}");
            await File.WriteAllBytesAsync(path, bytes);
            var key = NewKey();
            await store.PutFileAsync(key, path, "application/octet-stream", CancellationToken.None);
            Assert.False(File.Exists(path), "the store takes the file over");
            await using var read = await store.OpenReadAsync(key, CancellationToken.None);
            using var copy = new MemoryStream();
            await read!.CopyToAsync(copy);
            Assert.True(bytes.AsSpan().SequenceEqual(copy.ToArray()), $"{backend}: {size} bytes came back different");
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task A_replaced_object_reads_new_a_deleted_one_reads_nothing_and_deleting_twice_is_fine(string backend)
    {
        var store = Create(backend);
        var key = NewKey();
        Assert.Null(await store.OpenReadAsync(key, CancellationToken.None));
        await store.PutAsync(key, new MemoryStream("first"u8.ToArray()), "text/plain", CancellationToken.None);
        await store.PutAsync(key, new MemoryStream("second"u8.ToArray()), "text/plain", CancellationToken.None);
        await using (var read = (await store.OpenReadAsync(key, CancellationToken.None))!)
        {
            Assert.Equal("second", await new StreamReader(read).ReadToEndAsync());
        }
        await store.DeleteAsync(key, CancellationToken.None);
        await store.DeleteAsync(key, CancellationToken.None);
        Assert.Null(await store.OpenReadAsync(key, CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task Keys_are_only_those_plugboard_makes(string backend)
    {
        var store = Create(backend);
        foreach (var key in new[] { "../etc/passwd", "workspaces/ws_a/documents/../../ws_b/documents/" + Guid.NewGuid().ToString("N"), "workspaces/WS/documents/x", "/abs", "" })
        {
            await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync(key, new MemoryStream([1]), "text/plain", CancellationToken.None));
            await Assert.ThrowsAsync<ArgumentException>(() => store.OpenReadAsync(key, CancellationToken.None));
            await Assert.ThrowsAsync<ArgumentException>(() => store.DeleteAsync(key, CancellationToken.None)); // the sweeper's path
            var file = Path.GetTempFileName();
            await Assert.ThrowsAsync<ArgumentException>(() => store.PutFileAsync(key, file, "text/plain", CancellationToken.None));
            File.Delete(file);
        }
        Assert.Throws<ArgumentException>(() => ObjectKeys.Document("../ws", Guid.NewGuid()));
    }

    [Fact]
    public async Task The_s3_store_signs_its_requests_and_a_wrong_secret_is_refused()
    {
        var wrong = new S3ObjectStore(new S3Location(new Uri(Environment.GetEnvironmentVariable("PLUGBOARD_TEST_S3_URL")!),
            "us-east-1", "connector-imports", "S3RVER", "not-the-secret"));
        var refused = await Assert.ThrowsAsync<Amazon.S3.AmazonS3Exception>(() => wrong.PutAsync(NewKey(), new MemoryStream([1]), "text/plain", CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task A_failed_upload_leaves_no_object_in_either_backend()
    {
        foreach (var backend in new[] { "filesystem", "s3" })
        {
            var store = Create(backend);
            var key = NewKey();
            await Assert.ThrowsAsync<IOException>(() => store.PutAsync(key, new FailingStream(S3ObjectStore.PartBytes + 10), "application/octet-stream", CancellationToken.None));
            Assert.Null(await store.OpenReadAsync(key, CancellationToken.None));
        }
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes, writable: false)
    {
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
    }

    /// <summary>Gives <paramref name="before"/> bytes, then fails as a dropped upload does.</summary>
    private sealed class FailingStream(int before) : Stream
    {
        private int _given;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_given >= before)
            {
                throw new IOException("the client went away");
            }
            var n = Math.Min(count, before - _given);
            Array.Fill(buffer, (byte)7, offset, n);
            _given += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _given; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
