namespace Plugboard.Http;

/// <summary>Field checks shared by the features; each failure names the field (as a JSON pointer) and what to send.</summary>
public static class Validate
{
    public static string Name(string? value, string field = "name", int max = 200)
    {
        var trimmed = value?.Trim() ?? "";
        if (trimmed.Length == 0 || trimmed.Length > max || trimmed.Any(char.IsControl))
        {
            throw Problems.Invalid($"{field} must be 1 to {max} printable characters.", "/" + field);
        }
        return trimmed;
    }

    public static string Text(string? value, string field, int max)
    {
        var text = value ?? "";
        if (text.Length > max)
        {
            throw Problems.Invalid($"{field} must be at most {max} characters.", "/" + field);
        }
        return text;
    }

    public static string Email(string? value, string field = "email")
    {
        var email = value?.Trim().ToLowerInvariant() ?? "";
        var at = email.IndexOf('@', StringComparison.Ordinal);
        if (email.Length is < 3 or > 320 || at <= 0 || at != email.LastIndexOf('@') || at == email.Length - 1 || email.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw Problems.Invalid($"{field} must be an email address.", "/" + field);
        }
        return email;
    }

    public static T OneOf<T>(T? value, IReadOnlyCollection<T> allowed, string field) where T : class =>
        value is not null && allowed.Contains(value) ? value
        : throw Problems.Invalid($"{field} must be one of: {string.Join(", ", allowed)}.", "/" + field);
}
