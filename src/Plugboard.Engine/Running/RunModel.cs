using System.Text.Json;
using Newtonsoft.Json.Linq;
using Polly;

namespace Plugboard.Engine.Running;

// What one run passes between its parts: prepared requests, outcomes and parsed bodies.
public sealed partial class ConnectorRunner
{

    private sealed record LogContext(string StepId, int? Page, int? Item);

    /// <summary>A step's retry pipeline and the rule it retries by (stateless: built once per step).</summary>
    private sealed record StepRetry(ResiliencePipeline<HttpOutcome> Pipeline, Func<HttpOutcome?, Exception?, bool> ShouldRetry);

    private sealed record RequestBody(byte[] Bytes, string ContentType);

    /// <summary>A rendered request. The Secret* flags say which parts a template filled from credentials or session
    /// (they may go only to credential hosts, whatever their text looks like after filters).</summary>
    private sealed record PreparedRequest(HttpMethod Method, Uri Url, List<KeyValuePair<string, string>> Headers, RequestBody? Body, bool SensitiveBody = false)
    {
        public HashSet<string>? SecretHeaders { get; init; }
        public bool SecretInPath { get; init; }
        public HashSet<string>? SecretQuery { get; init; }
        public bool SecretInUrl => SecretInPath || SecretQuery is not null;
        public bool SecretInBody { get; init; }

        /// <summary>Set for a download: a 2xx body is streamed here (at most MaxBytes), not read into memory.</summary>
        public DownloadSink? Download { get; init; }
    }

    private sealed record DownloadSink(Stream Destination, long MaxBytes);

    private sealed record AuthMaterial(List<KeyValuePair<string, string>> Headers, List<KeyValuePair<string, string>> Query, string? Token);

    private sealed record HttpOutcome(int Status, Uri Url, string Body, ResponseBody Parsed, TimeSpan? RetryAfter, string[] Link, string? AuthToken, long Bytes)
    {
        public int Attempts { get; init; } = 1;

        /// <summary>The media type the response declared (downloads).</summary>
        public string? MediaType { get; init; }

        /// <summary>The answer of a hop after a redirect: the first hop reached the server.</summary>
        public bool Redirected { get; init; }

        public bool HasBody => Parsed.HasBody;

        /// <summary>The whole body as tokens (a string token when it is not JSON; null when empty).</summary>
        public JToken? Json => Parsed.Token;

        /// <summary>A JSONPath into the body: a path that can match several values yields an array, otherwise one value or null.</summary>
        public JToken Select(string path) => Parsed.Select(path);
    }

    /// <summary>
    /// A response body: JSON is kept as a System.Text.Json element, and simple paths ($.a.b[0]) are read from it
    /// directly; the Newtonsoft tokens JSONPath's other forms need are built only when one of them is used.
    /// </summary>
    private sealed class ResponseBody : IDisposable
    {
        private readonly JsonDocument? _document;
        private JToken? _token;

        private ResponseBody(JsonDocument? document, JToken? token)
        {
            _document = document;
            _token = token;
        }

        /// <summary>Returns the document's pooled buffers; only for a body nothing reads any more (unreturned ones are simply collected).</summary>
        public void Dispose() => _document?.Dispose();

        public bool HasBody => _document is not null || _token is not null;

        public JToken? Token => _token ??= _document is { } document ? JsonInterop.ToToken(document.RootElement) : null;

        public static ResponseBody Read(string text, byte[] utf8)
        {
            var span = text.AsSpan().TrimStart();
            if (span.Length == 0)
            {
                return new ResponseBody(null, null);
            }
            if (span[0] == '<')
            {
                // XML (RSS, Atom, XML APIs) is read into the same tokens as JSON; anything else (HTML) stays text.
                return new ResponseBody(null, XmlTokens.TryRead(span.ToString()) ?? (JToken)new JValue(text));
            }
            if (span[0] != '{' && span[0] != '[')
            {
                return new ResponseBody(null, new JValue(text));
            }
            try
            {
                return new ResponseBody(JsonInterop.ParseDocument(utf8), null);
            }
            catch (System.Text.Json.JsonException)
            {
                return new ResponseBody(null, new JValue(text));
            }
        }

        public JToken Select(string path)
        {
            if (_document is { } document && JsonInterop.TrySelect(document.RootElement, path, out var selected))
            {
                return selected;
            }
            return Token is { } token ? JsonInterop.Select(token, path) : JValue.CreateNull();
        }
    }
}
