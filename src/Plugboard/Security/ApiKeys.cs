using System.Security.Cryptography;
using System.Text;

namespace Plugboard.Security;

/// <summary>
/// API keys read <c>pb_&lt;prefix&gt;_&lt;secret&gt;</c>: about 250 random bits (43 characters of a 57-letter alphabet), shown once, stored as a SHA-256 hash (a slow
/// hash adds nothing to a key this long). The prefix is stored in clear so people can tell keys apart.
/// </summary>
public static class ApiKeys
{
    private const string Alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    public static (string Key, string Prefix, byte[] Hash) Generate()
    {
        var prefix = RandomString(8);
        var key = $"pb_{prefix}_{RandomString(43)}";
        return (key, $"pb_{prefix}", Hash(key));
    }

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public static bool LooksLikeKey(string token) => token.StartsWith("pb_", StringComparison.Ordinal) && token.Length is > 12 and < 100;

    private static string RandomString(int length) => RandomNumberGenerator.GetString(Alphabet, length);
}
