using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Plugboard.Security;

/// <summary>
/// AES-256-GCM envelope encryption with a key ring. Ciphertexts read <c>pb1:&lt;key id&gt;:&lt;base64url(nonce|ciphertext|tag)&gt;</c>;
/// the additional authenticated data binds each one to its workspace, table, row and column, so a ciphertext
/// copied anywhere else fails to decrypt. New writes use the newest key; older keys stay for reading until
/// <c>plugboard keys rotate</c> has re-encrypted everything. Keys never enter the database.
/// </summary>
public sealed class KeyRing
{
    public const string Prefix = "pb1:";
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private State _state;
    private string? _sourceFile;
    private DateTime _sourceStamp;
    private long _nextCheck;

    private sealed record State(Dictionary<string, byte[]> Keys, IReadOnlyList<KeyRingEntry> Entries, string CurrentKeyId);

    public KeyRing(IReadOnlyList<KeyRingEntry> entries) => _state = Parse(entries);

    private static State Parse(IReadOnlyList<KeyRingEntry> entries)
    {
        if (entries.Count == 0)
        {
            throw new InvalidOperationException("The key ring is empty: add a key (plugboard keys rotate) or set PLUGBOARD_KEYS.");
        }
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            var key = Convert.FromBase64String(entry.Key);
            if (key.Length != 32)
            {
                throw new InvalidOperationException($"Key '{entry.Id}' is not 32 bytes of base64: every key must be a 256-bit AES key.");
            }
            if (!IsValidKeyId(entry.Id))
            {
                throw new InvalidOperationException($"Key id '{entry.Id}' must be 1-32 letters, digits, '-' or '_'.");
            }
            keys[entry.Id] = key;
        }
        return new State(keys, entries, entries[^1].Id);
    }

    public IReadOnlyList<KeyRingEntry> Entries => Current.Entries;
    public string CurrentKeyId => Current.CurrentKeyId;

    /// <summary>
    /// A ring read from a file picks up `plugboard keys rotate` in running processes: the file is re-read when it
    /// changes (checked at most every few seconds), so rotation needs no restart.
    /// </summary>
    private State Current
    {
        get
        {
            if (_sourceFile is not null && Environment.TickCount64 > Interlocked.Read(ref _nextCheck))
            {
                Interlocked.Exchange(ref _nextCheck, Environment.TickCount64 + 2000);
                try
                {
                    var stamp = File.GetLastWriteTimeUtc(_sourceFile);
                    if (stamp != _sourceStamp)
                    {
                        _state = FromJson(File.ReadAllText(_sourceFile))._state;
                        _sourceStamp = stamp;
                    }
                }
                catch (Exception e) when (e is IOException or JsonException or InvalidOperationException or FormatException)
                {
                    // Keep the keys already loaded; the next check tries again.
                }
            }
            return _state;
        }
    }

    private static bool IsValidKeyId(string id) =>
        id.Length is > 0 and <= 32 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    public static string Aad(string workspaceId, string table, Guid rowId, string column) =>
        $"{workspaceId}/{table}/{rowId:D}/{column}";

    public string Encrypt(string plaintext, string aad)
    {
        var plain = Encoding.UTF8.GetBytes(plaintext);
        var output = new byte[NonceSize + plain.Length + TagSize];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        var state = Current;
        using var gcm = new AesGcm(state.Keys[state.CurrentKeyId], TagSize);
        gcm.Encrypt(nonce, plain, output.AsSpan(NonceSize, plain.Length), output.AsSpan(NonceSize + plain.Length), Encoding.UTF8.GetBytes(aad));
        CryptographicOperations.ZeroMemory(plain);
        return $"{Prefix}{state.CurrentKeyId}:{Base64UrlEncode(output)}";
    }

    public string Decrypt(string ciphertext, string aad)
    {
        if (!TryParse(ciphertext, out var keyId, out var payload))
        {
            throw new SecretDecryptionException("The value is not a Plugboard ciphertext.");
        }
        if (!Current.Keys.TryGetValue(keyId, out var key))
        {
            throw new SecretDecryptionException($"Key '{keyId}' is not in the key ring: restore it or re-encrypt with `plugboard keys rotate`.");
        }
        if (payload.Length < NonceSize + TagSize)
        {
            throw new SecretDecryptionException("The ciphertext is truncated.");
        }
        var plain = new byte[payload.Length - NonceSize - TagSize];
        try
        {
            using var gcm = new AesGcm(key, TagSize);
            gcm.Decrypt(payload.AsSpan(0, NonceSize), payload.AsSpan(NonceSize, plain.Length), payload.AsSpan(NonceSize + plain.Length), plain, Encoding.UTF8.GetBytes(aad));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new SecretDecryptionException("The ciphertext does not belong to this row or was altered.");
        }
        return Encoding.UTF8.GetString(plain);
    }

    public static string? KeyIdOf(string ciphertext) => TryParse(ciphertext, out var keyId, out _) ? keyId : null;

    private static bool TryParse(string ciphertext, out string keyId, out byte[] payload)
    {
        keyId = "";
        payload = [];
        if (!ciphertext.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var rest = ciphertext.AsSpan(Prefix.Length);
        var colon = rest.IndexOf(':');
        if (colon <= 0)
        {
            return false;
        }
        keyId = rest[..colon].ToString();
        try
        {
            payload = Base64UrlDecode(rest[(colon + 1)..].ToString());
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public KeyRing WithNewKey()
    {
        var existing = Entries.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        var id = $"k{DateTimeOffset.UtcNow:yyyyMMddHHmmss}";
        while (existing.Contains(id))
        {
            id += "a";
        }
        return new KeyRing([.. Entries, new KeyRingEntry(id, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)))]);
    }

    public static KeyRing Generate() =>
        new([new KeyRingEntry($"k{DateTimeOffset.UtcNow:yyyyMMddHHmmss}", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)))]);

    public string ToJson() => JsonSerializer.Serialize(new KeyRingFile(Entries.ToList()), KeyRingJson.Options);

    public static KeyRing FromJson(string json)
    {
        var file = JsonSerializer.Deserialize<KeyRingFile>(json, KeyRingJson.Options)
            ?? throw new InvalidOperationException("The key ring is empty.");
        return new KeyRing(file.Keys);
    }

    /// <summary>
    /// PLUGBOARD_KEYS (the key ring JSON) wins; else PLUGBOARD_KEYS_FILE; else &lt;home&gt;/keys.json, created on first use
    /// when <paramref name="createIfMissing"/> (the embedded default).
    /// </summary>
    public static KeyRing Load(IConfiguration configuration, string home, bool createIfMissing)
    {
        if (configuration["PLUGBOARD_KEYS"] is { Length: > 0 } inline)
        {
            return FromJson(inline);
        }
        var path = KeyFilePath(configuration, home);
        if (File.Exists(path))
        {
            var loaded = FromJson(File.ReadAllText(path));
            loaded._sourceFile = path;
            loaded._sourceStamp = File.GetLastWriteTimeUtc(path);
            return loaded;
        }
        if (!createIfMissing)
        {
            throw new KeyRingMissingException($"No key ring: set PLUGBOARD_KEYS or PLUGBOARD_KEYS_FILE, or create {path} with `plugboard keys rotate`.");
        }
        Generate().Save(path);
        return Load(configuration, home, createIfMissing: false);
    }

    public static string KeyFilePath(IConfiguration configuration, string home) =>
        configuration["PLUGBOARD_KEYS_FILE"] is { Length: > 0 } file ? file : Path.Combine(home, "keys.json");

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = path + ".tmp";
        File.WriteAllText(temp, "");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.WriteAllText(temp, ToJson());
        File.Move(temp, path, overwrite: true);
    }

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] Base64UrlDecode(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", 0 => "", _ => throw new FormatException() };
        return Convert.FromBase64String(padded);
    }
}

public sealed record KeyRingEntry(string Id, string Key);

internal sealed record KeyRingFile(List<KeyRingEntry> Keys);

internal static class KeyRingJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}

public sealed class SecretDecryptionException(string message) : Exception(message);

/// <summary>The process has no key ring to load: an operator's set-up step is missing, not a bug.</summary>
public sealed class KeyRingMissingException(string message) : InvalidOperationException(message);
