using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Plugboard.Engine.Running;

/// <summary>
/// Replaces every secret the run knows (credential fields, tokens obtained during the run, their URL-, JSON- and
/// Base64-encoded forms) and the value of every secret-looking query parameter with <c>***</c>. Thread-safe; secrets
/// can be added while the run goes on (new access tokens).
/// </summary>
public sealed partial class Redactor
{
    public const string Mask = "***";
    public const int MinimumSecretLength = 4;

    private readonly Lock _gate = new();
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private Secrets _secrets = Secrets.None;

    /// <summary>The encoded forms, longest first (a longer form is replaced before a shorter one inside it). Many forms
    /// are searched with one multi-string search, so text without a secret is scanned once rather than once per form;
    /// a few are searched one by one, since building the multi-string search costs more than a run's scans of them.</summary>
    private sealed class Secrets(string[] forms)
    {
        private const int MaxFormsSearchedOneByOne = 4;
        public static readonly Secrets None = new([]);
        public readonly string[] Forms = forms;
        // Built at the first search, not per secret added (a run adds all its credentials before it searches).
        private SearchValues<string>? _search;

        public bool AnyIn(string text)
        {
            if (Forms.Length > MaxFormsSearchedOneByOne)
            {
                return text.AsSpan().IndexOfAny(_search ??= SearchValues.Create(Forms, StringComparison.Ordinal)) >= 0;
            }
            foreach (var form in Forms)
            {
                if (text.Contains(form, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }
    }

    public Redactor(IEnumerable<string?>? secrets = null)
    {
        foreach (var secret in secrets ?? [])
        {
            Add(secret);
        }
    }

    /// <summary>Registers a secret value (ignored below <see cref="MinimumSecretLength"/> characters).</summary>
    public void Add(string? secret)
    {
        if (secret is null || secret.Length < MinimumSecretLength)
        {
            return;
        }
        lock (_gate)
        {
            if (!_known.Add(secret))
            {
                return;
            }
            // A handful of forms per secret: a list checked in place is cheaper than two sets.
            var forms = new List<string>(_secrets.Forms.Length + 6);
            forms.AddRange(_secrets.Forms);
            // JSON has two escapings here: System.Text.Json's (\u0022, non-ASCII escaped) and Newtonsoft's, which writes
            // request bodies (\", the rest as is).
            foreach (var form in (ReadOnlySpan<string>)[secret, Uri.EscapeDataString(secret), JsonEncodedText.Encode(secret).ToString(),
                         Newtonsoft.Json.JsonConvert.ToString(secret)[1..^1],
                         Convert.ToBase64String(Encoding.UTF8.GetBytes(secret)), secret.Replace("/", "\\/", StringComparison.Ordinal)])
            {
                if (form.Length >= MinimumSecretLength && !forms.Contains(form)) // string equality is ordinal
                {
                    forms.Add(form);
                }
            }
            _secrets = new Secrets([.. forms.OrderByDescending(f => f.Length)]); // longest first; a stable sort, as before
        }
    }

    /// <summary>Whether the text holds any known secret, in any of its encoded forms.</summary>
    public bool ContainsSecret(string? text)
    {
        return !string.IsNullOrEmpty(text) && Volatile.Read(ref _secrets).AnyIn(text);
    }

    public bool Contains(string value)
    {
        lock (_gate)
        {
            return _known.Contains(value);
        }
    }

    public string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? "";
        }
        return MaskSecretParameters(RedactSecretValues(text));
    }

    /// <summary>Masks the value of every <c>name=value</c> pair (query strings, form bodies) whose name looks secret.</summary>
    private static string MaskSecretParameters(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals < 0)
        {
            return text;
        }
        StringBuilder? result = null;
        var copied = 0;
        for (; equals >= 0 && equals < text.Length; equals = text.IndexOf('=', equals + 1))
        {
            var keyStart = equals;
            while (keyStart > 0 && IsKeyChar(text[keyStart - 1]))
            {
                keyStart--;
            }
            if (keyStart == equals || (keyStart > 0 && !IsPairStart(text[keyStart - 1])) || !SecretName().IsMatch(text.AsSpan(keyStart, equals - keyStart)))
            {
                continue;
            }
            var valueEnd = equals + 1;
            while (valueEnd < text.Length && !IsValueEnd(text[valueEnd]))
            {
                valueEnd++;
            }
            if (valueEnd == equals + 1 || text.AsSpan(equals + 1, valueEnd - equals - 1).SequenceEqual(Mask))
            {
                continue;
            }
            result ??= new StringBuilder(text.Length);
            result.Append(text, copied, equals + 1 - copied).Append(Mask);
            copied = valueEnd;
            equals = valueEnd - 1;
        }
        return result is null ? text : result.Append(text, copied, text.Length - copied).ToString();
    }

    private static bool IsKeyChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or '[' or ']';

    private static bool IsPairStart(char c) => c is '?' or '&' or ';' or '"' or '\'' or ' ' or '\t' or '\n' or '\r';

    private static bool IsValueEnd(char c) => c is '&' or '#' or '"' or '\'' or '<' or '>' || char.IsWhiteSpace(c);

    /// <summary>Redacts a possibly long text and keeps at most <paramref name="maxChars"/> characters of it.</summary>
    public string RedactTruncated(string? text, int maxChars)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? "";
        }
        var secrets = Volatile.Read(ref _secrets).Forms;
        var longest = secrets.Length == 0 ? 0 : secrets[0].Length;
        // Redact a prefix long enough to hold any secret crossing the cut, then drop what could be a cut secret.
        var window = maxChars + longest + 256;
        var cut = text.Length > window;
        var redacted = Redact(cut ? text[..window] : text);
        var keep = cut ? Math.Max(0, redacted.Length - longest - 128) : redacted.Length;
        keep = Math.Min(keep, maxChars);
        return keep < redacted.Length ? redacted[..keep] + "…" : redacted;
    }

    /// <summary>Replaces known secret values only (no parameter-name heuristics): for user data such as run output.</summary>
    public string RedactSecretValues(string text)
    {
        var secrets = Volatile.Read(ref _secrets);
        if (!secrets.AnyIn(text))
        {
            return text;
        }
        foreach (var secret in secrets.Forms)
        {
            if (text.Contains(secret, StringComparison.Ordinal))
            {
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
            }
        }
        return text;
    }

    /// <summary>The message of an exception and its inner exceptions, redacted.</summary>
    public string Redact(Exception ex)
    {
        var messages = new List<string>();
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (messages.Count == 0 || !messages[^1].Contains(e.Message, StringComparison.Ordinal))
            {
                messages.Add(e.Message);
            }
        }
        return Redact(string.Join(" ---> ", messages));
    }

    /// <summary>True when a query parameter (or form field) name suggests its value is a secret.</summary>
    public static bool IsSecretName(string name) => SecretName().IsMatch(name);

    [GeneratedRegex(@"(token|key|secret|signature|\bsig\b|^sig$|password|passwd|pwd|auth|credential|session|cookie|private)", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();
}
