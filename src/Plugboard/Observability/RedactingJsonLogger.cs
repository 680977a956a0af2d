using System.Text.Json;
using System.Text.RegularExpressions;

namespace Plugboard.Observability;

/// <summary>
/// Structured JSON logs, one object per line, with a last line of defence against secrets: bearer tokens,
/// Plugboard API keys, ciphertexts, passwords in connection strings, webhook secrets and endpoint tokens (a
/// <c>/v1/hooks/…</c> path) and well-known token formats are masked
/// before anything is written. Code never logs secret values in the first place; this catches mistakes.
/// </summary>
public sealed partial class RedactingJsonLoggerProvider(TextWriter output, LogLevel minimum) : ILoggerProvider
{
    private readonly Lock _gate = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    public static string Redact(string text) => SecretPattern().Replace(text, m => m.Groups["keep"].Success ? m.Groups["keep"].Value + "***" : "***");

    // keep = the part worth seeing (scheme, key name); the secret after it becomes ***.
    [GeneratedRegex(@"(?<keep>(?i:bearer|basic)\s+)[A-Za-z0-9\-._~+/=]{8,}|(?<keep>(?i:password|pwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s;,""']+|pb_[A-Za-z0-9]{6,}_[A-Za-z0-9]{20,}|pb1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(live|test)_[A-Za-z0-9]{16,}|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}|whsec_[A-Za-z0-9+/=]{16,}|(?<keep>/v1/hooks/)[A-Za-z0-9_-]{16,}")]
    private static partial Regex SecretPattern();

    private void Write(string category, LogLevel level, EventId eventId, string message, Exception? exception, IReadOnlyList<KeyValuePair<string, object?>>? state)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("timestamp", DateTimeOffset.UtcNow);
            json.WriteString("level", level.ToString());
            json.WriteString("category", category);
            if (eventId.Id != 0)
            {
                json.WriteNumber("event_id", eventId.Id);
            }
            json.WriteString("message", Redact(message));
            if (state is not null)
            {
                foreach (var (key, value) in state)
                {
                    if (key != "{OriginalFormat}" && value is not null)
                    {
                        json.WriteString(key, Redact(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? ""));
                    }
                }
            }
            if (System.Diagnostics.Activity.Current is { } activity)
            {
                json.WriteString("trace_id", activity.TraceId.ToString());
            }
            if (exception is not null)
            {
                // Exception messages can quote input; only the type and a redacted message are kept.
                json.WriteString("exception", exception.GetType().FullName);
                json.WriteString("exception_message", Redact(exception.Message));
            }
            json.WriteEndObject();
        }
        var line = System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        lock (_gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }

    private sealed class Logger(RedactingJsonLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= provider._minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            provider.Write(category, logLevel, eventId, formatter(state, exception), exception, state as IReadOnlyList<KeyValuePair<string, object?>>);
        }
    }

    private readonly LogLevel _minimum = minimum;
}
