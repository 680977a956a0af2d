using System.Globalization;

namespace Plugboard.Hosting;

/// <summary>A configuration value that cannot be used: the process stops at start with this message.</summary>
public sealed class InvalidSettingException(string message) : Exception(message);

/// <summary>
/// Reads numeric settings (environment variables) strictly: unset means the default, anything else must parse and
/// lie in range, or the process refuses to start with a message that names the variable. A typo never silently
/// becomes the default.
/// </summary>
public static class Settings
{
    public static int Int(IConfiguration configuration, string name, int fallback, int min, int max)
    {
        var text = configuration[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new InvalidSettingException($"{name} must be a whole number from {min} to {max}; it is '{text}'.");
    }

    public static double Number(IConfiguration configuration, string name, double fallback, double min, double max)
    {
        var text = configuration[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new InvalidSettingException($"{name} must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}; it is '{text}'.");
    }

    public static bool Bool(IConfiguration configuration, string name, bool fallback)
    {
        var text = configuration[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return bool.TryParse(text.Trim(), out var value) ? value : throw new InvalidSettingException($"{name} must be true or false; it is '{text}'.");
    }

    public static T Enum<T>(IConfiguration configuration, string name, T fallback) where T : struct, System.Enum
    {
        var text = configuration[name];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }
        return System.Enum.TryParse<T>(text.Trim(), ignoreCase: true, out var value) && System.Enum.IsDefined(value)
            ? value
            : throw new InvalidSettingException($"{name} must be one of {string.Join(", ", System.Enum.GetNames<T>())}; it is '{text}'.");
    }
}
