using System.Text;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

// One run: rendering a request (URL, query, headers, body) and what of it carries secrets.
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {

        /// <summary>Renders a request; notes which parts read credentials or session values (see <see cref="SecretReads"/>).</summary>
        private async ValueTask<PreparedRequest> PrepareAsync(RequestSpec spec, TemplateModel model, List<KeyValuePair<string, string>>? extraQuery, Uri? explicitUrl)
        {
            var headers = new List<KeyValuePair<string, string>>(spec.Headers.Count);
            HashSet<string>? secretHeaders = null;
            foreach (var (name, value) in spec.Headers)
            {
                var headerReads = new SecretReads();
                headers.Add(new(name, await _templates.RenderAsync(value, model, headerReads).ConfigureAwait(false)));
                if (headerReads.Any)
                {
                    (secretHeaders ??= new HashSet<string>(StringComparer.OrdinalIgnoreCase)).Add(name);
                }
            }
            var bodyReads = new SecretReads();
            var body = await BodyAsync(spec.Body, model, bodyReads).ConfigureAwait(false);
            if (explicitUrl is not null)
            {
                return new PreparedRequest(HttpMethod.Parse(spec.Method), explicitUrl, headers, body)
                {
                    SecretHeaders = secretHeaders,
                    SecretInBody = bodyReads.Any,
                };
            }
            var pathReads = new SecretReads();
            HashSet<string>? secretQuery = null;
            string url;
            if (spec.Url is not null)
            {
                url = (await _templates.RenderAsync(spec.Url, model, pathReads).ConfigureAwait(false)).Trim();
            }
            else
            {
                var path = (await _templates.RenderAsync(spec.Path ?? "", model, pathReads).ConfigureAwait(false)).Trim();
                var baseText = _basePath;
                url = path.Length == 0 ? baseText : baseText + (path.StartsWith('/') ? path : "/" + path);
                if (_baseUrl.Query.Length > 1)
                {
                    url += (url.Contains('?', StringComparison.Ordinal) ? "&" : "?") + _baseUrl.Query[1..];
                }
            }
            var query = new List<KeyValuePair<string, string>>(spec.Query.Count + (extraQuery?.Count ?? 0));
            foreach (var (name, value) in spec.Query)
            {
                if (extraQuery?.Exists(e => e.Key == name) == true)
                {
                    continue;
                }
                var queryReads = new SecretReads();
                var rendered = await _templates.RenderAsync(value, model, queryReads).ConfigureAwait(false);
                if (rendered.Length > 0)
                {
                    query.Add(new(name, rendered));
                    if (queryReads.Any)
                    {
                        (secretQuery ??= new HashSet<string>(StringComparer.Ordinal)).Add(name);
                    }
                }
            }
            if (extraQuery is not null)
            {
                query.AddRange(extraQuery);
            }
            if (query.Count > 0)
            {
                var builder = new StringBuilder(url);
                var separator = url.Contains('?', StringComparison.Ordinal) ? '&' : '?';
                foreach (var (name, value) in query)
                {
                    builder.Append(separator).Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
                    separator = '&';
                }
                url = builder.ToString();
            }
            return new PreparedRequest(HttpMethod.Parse(spec.Method), ParseHttpUrl(url, shown: pathReads.Any || secretQuery is not null ? "The request URL" : null), headers, body)
            {
                SecretHeaders = secretHeaders,
                SecretInBody = bodyReads.Any,
                SecretInPath = pathReads.Any,
                SecretQuery = secretQuery,
            };
        }

        private Uri ParseHttpUrl(string url, string? shown = null) =>
            Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
                ? uri
                : throw new RunFailedException($"{shown ?? $"'{redactor.Redact(url)}'"} is not an absolute http(s) URL; only http and https are allowed.");

        /// <summary>
        /// A URL as logs and errors show it: redacted, and where a template filled it from credentials or session,
        /// masked by part (the whole path, or those query values), since filters can disguise a secret from the
        /// redactor. Hops after a redirect come from the server and are only redacted.
        /// </summary>
        private string Shown(PreparedRequest request, Uri url, Uri? sent = null)
        {
            var text = redactor.Redact((sent ?? url).ToString());
            if (url != request.Url || (!request.SecretInPath && request.SecretQuery is null))
            {
                return text;
            }
            if (request.SecretInPath)
            {
                return redactor.Redact(url.GetLeftPart(UriPartial.Authority)) + "/" + Redactor.Mask;
            }
            foreach (var name in request.SecretQuery!)
            {
                var escaped = System.Text.RegularExpressions.Regex.Escape(Uri.EscapeDataString(name));
                text = System.Text.RegularExpressions.Regex.Replace(text, $"([?&]{escaped}=)[^&#]*", "$1" + Redactor.Mask);
            }
            return text;
        }

        private static Uri AppendQuery(Uri uri, List<KeyValuePair<string, string>> query)
        {
            if (query.Count == 0)
            {
                return uri;
            }
            var builder = new StringBuilder(uri.GetLeftPart(UriPartial.Path));
            var separator = '?';
            if (uri.Query.Length > 1)
            {
                builder.Append(uri.Query);
                separator = '&';
            }
            foreach (var (name, value) in query)
            {
                builder.Append(separator).Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
                separator = '&';
            }
            builder.Append(uri.Fragment);
            return new Uri(builder.ToString());
        }

        private async ValueTask<RequestBody?> BodyAsync(BodySpec? body, TemplateModel model, SecretReads reads)
        {
            if (body is null)
            {
                return null;
            }
            if (body.Json is not null)
            {
                var json = await _templates.EvaluateTreeAsync(JsonInterop.ToToken(body.Json), model, reads).ConfigureAwait(false);
                return new RequestBody(Encoding.UTF8.GetBytes(json.ToString(Newtonsoft.Json.Formatting.None)), "application/json");
            }
            if (body.Form is not null)
            {
                var fields = new StringBuilder();
                foreach (var (name, value) in body.Form)
                {
                    var rendered = await _templates.RenderAsync(value, model, reads).ConfigureAwait(false);
                    fields.Append(fields.Length == 0 ? "" : "&").Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(rendered));
                }
                return new RequestBody(Encoding.UTF8.GetBytes(fields.ToString()), "application/x-www-form-urlencoded");
            }
            return new RequestBody(Encoding.UTF8.GetBytes(await _templates.RenderAsync(body.Text ?? "", model, reads).ConfigureAwait(false)), "text/plain; charset=utf-8");
        }
    }
}
