using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Plugboard.Http;

/// <summary>
/// Kestrel refuses a request it cannot parse (an encoded NUL, <c>%00</c>, in the path, a malformed request line or
/// header, headers too large) before any middleware runs, with a bare status and no body, and offers no hook to
/// change that. This connection filter sees the bytes Kestrel writes and gives exactly those answers — a 4xx
/// without a body that closes the connection, which Plugboard's own handlers never send — an RFC 9457 problem body.
/// It looks at each write's first bytes only; nothing is copied.
/// </summary>
public static class ServerRejections
{
    public static void Use(ListenOptions listen) => listen.Use(next => connection =>
    {
        connection.Transport = new Transport(connection.Transport);
        return next(connection);
    });

    private sealed class Transport(IDuplexPipe inner) : IDuplexPipe
    {
        public PipeReader Input { get; } = inner.Input;
        public PipeWriter Output { get; } = new ProblemBodyWriter(inner.Output);
    }

    private sealed class ProblemBodyWriter(PipeWriter inner) : PipeWriter
    {
        private Memory<byte> _handedOut;

        public override Memory<byte> GetMemory(int sizeHint = 0) => _handedOut = inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => (_handedOut = inner.GetMemory(sizeHint)).Span;

        public override void Advance(int bytes)
        {
            if (bytes <= _handedOut.Length && Rewrite(_handedOut.Span[..bytes]) is { } replacement)
            {
                // The rejection's bytes are not committed yet: write the replacement over them.
                replacement.CopyTo(inner.GetSpan(replacement.Length));
                inner.Advance(replacement.Length);
                return;
            }
            inner.Advance(bytes);
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;
    }

    /// <summary>The same response with a problem body, when <paramref name="written"/> is a whole bodyless 4xx that closes the connection.</summary>
    internal static byte[]? Rewrite(ReadOnlySpan<byte> written)
    {
        // Exactly one response head, from Kestrel itself: "HTTP/1.1 4dd …", its only blank line at the end, no body,
        // no Content-Type (every answer of Plugboard's own has one), and the connection closing.
        if (written.Length is < 16 or > 1024 || !written.StartsWith("HTTP/1.1 4"u8) || !char.IsAsciiDigit((char)written[10])
            || !char.IsAsciiDigit((char)written[11]) || written[12] != (byte)' ' || written.IndexOf("\r\n\r\n"u8) != written.Length - 4
            || written.IndexOf("\r\nContent-Length: 0\r\n"u8) < 0 || written.IndexOf("\r\nConnection: close\r\n"u8) < 0
            || written.IndexOf("\r\nContent-Type:"u8) >= 0)
        {
            return null;
        }
        var head = Encoding.ASCII.GetString(written);
        var status = int.Parse(head.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture);
        var (slug, title, detail) = status switch
        {
            414 => ("uri-too-long", "URI too long", "The request target is longer than the server accepts."),
            431 => ("request-headers-too-large", "Request headers too large", "The request's headers are larger than the server accepts."),
            413 => ("payload-too-large", "Payload too large", "The request body is larger than the server accepts."),
            408 => ("request-timeout", "Request timeout", "The request's headers did not arrive in time; nothing was processed."),
            400 => ("bad-request", "Bad request",
                "The HTTP server refused the request before it reached Plugboard: its request line or a header is malformed " +
                "(for example an encoded NUL, %00, or another invalid encoding in the path). Nothing was processed; fix the request and send it again."),
            _ => (Problems.SlugFor(status), "Refused", $"The HTTP server refused the request (HTTP {status}) before it reached Plugboard; nothing was processed."),
        };
        var body = Encoding.UTF8.GetBytes(
            $$"""{"type":"{{Problems.TypePrefix}}{{slug}}","title":"{{title}}","status":{{status}},"detail":"{{detail}}"}""");
        var headers = head[..^2].Replace("\r\nContent-Length: 0\r\n", $"\r\nContent-Type: application/problem+json\r\nContent-Length: {body.Length}\r\n", StringComparison.Ordinal);
        return [.. Encoding.ASCII.GetBytes(headers + "\r\n"), .. body];
    }
}
