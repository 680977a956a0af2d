using Plugboard.Engine.Manifests;

namespace Plugboard.Engine.Running;

// Downloading a document's file (a stream's content_url) for the host: the same guarded handler, redirects, retries,
// auth on credential hosts only (and OAuth refresh), and redaction as every step — but streamed to the host's file.
public sealed partial class ConnectorRunner
{
    /// <summary>
    /// GETs <paramref name="url"/> with the manifest's auth (applied only when the URL's host is a credential host:
    /// base_url's or allowed_hosts; dropped on a redirect elsewhere) and streams a 2xx body into
    /// <paramref name="destination"/> (seekable; emptied first), at most <paramref name="maxBytes"/>.
    /// </summary>
    public Task<DownloadResult> DownloadAsync(Manifest manifest, RunRequest request, string url, Stream destination, long maxBytes, CancellationToken ct) =>
        RunAloneAsync(manifest, request, request?.Credentials.Values ?? [], options.ExecutionTimeout,
            run => run.DownloadAsync(url, destination, maxBytes),
            (error, tooLarge) => new DownloadResult(null, null, 0, error) { Permanent = tooLarge }, ct);

    private sealed partial class Run
    {
        public async Task<DownloadResult> DownloadAsync(string url, Stream destination, long maxBytes)
        {
            await InitializeAsync(withInputs: false).ConfigureAwait(false);
            await PrepareAuthAsync(force: false, rejected: null).ConfigureAwait(false);
            var prepared = new PreparedRequest(HttpMethod.Get, ParseHttpUrl(url.Trim(), "The content_url"), [new("Accept", "*/*")], null)
            {
                Download = new DownloadSink(destination, maxBytes),
            };
            var context = new LogContext("download", null, null);
            var outcome = await SendAsync(prepared, BuildPipeline(null), context, _options.ExecutionTimeout, applyAuth: true).ConfigureAwait(false);
            if (outcome.Status == 401 && outcome.AuthToken is not null && manifest.Auth.IsOAuth2)
            {
                await PrepareAuthAsync(force: true, rejected: outcome.AuthToken).ConfigureAwait(false);
                outcome = await SendAsync(prepared, BuildPipeline(null), context, _options.ExecutionTimeout, applyAuth: true).ConfigureAwait(false);
            }
            if (outcome.Status is < 200 or >= 300)
            {
                return new DownloadResult(outcome.Status, null, 0,
                    $"The download of {Shown(prepared, outcome.Url)} returned HTTP {outcome.Status}: {redactor.RedactTruncated(outcome.Body, 300)}")
                {
                    // 403 is also how some providers rate-limit (Google's userRateLimitExceeded): the document job tries again.
                    Permanent = outcome.Status is >= 400 and < 500 and not 403 and not 408 and not 429,
                };
            }
            return new DownloadResult(outcome.Status, outcome.MediaType, outcome.Bytes, null);
        }
    }
}
