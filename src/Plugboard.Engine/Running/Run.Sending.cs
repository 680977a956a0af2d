using System.Diagnostics;
using System.Text;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Polly;
using Polly.Retry;

namespace Plugboard.Engine.Running;

// One run: sending a request (retries, redirects, the credential-host check, timeouts, capped bodies, the log).
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {
        /// <summary>
        /// The first attempt runs outside the retry pipeline, since most requests succeed at once; a retryable outcome
        /// (or transient error) then enters Polly with that outcome as its first attempt, so Polly's delays (Retry-After,
        /// backoff with jitter) and attempt limit apply exactly as if it had run every attempt. The first attempt is the
        /// same state machine as the send (one async frame per request fewer).
        /// </summary>
        private Task<HttpOutcome> SendAsync(PreparedRequest request, StepRetry retry, LogContext context, TimeSpan timeout, bool applyAuth) =>
            SendFollowingRedirectsAsync(request, context, 1, timeout, applyAuth, ct, retry);

        // Separate from the first attempt so the closure Polly's callback needs is allocated only when a request is retried.
        private async Task<HttpOutcome> RetryAsync(PreparedRequest request, StepRetry retry, LogContext context, TimeSpan timeout, bool applyAuth,
            HttpOutcome? first, System.Runtime.ExceptionServices.ExceptionDispatchInfo? firstError)
        {
            var attempt = 0;
            return await retry.Pipeline.ExecuteAsync(async token =>
            {
                var number = Interlocked.Increment(ref attempt);
                if (number == 1)
                {
                    firstError?.Throw();
                    return first!;
                }
                var outcome = await SendFollowingRedirectsAsync(request, context, number, timeout, applyAuth, token, null).ConfigureAwait(false);
                return outcome with { Attempts = number };
            }, ct).ConfigureAwait(false);
        }

        private CancellationTokenSource RentAttemptSource(CancellationToken token) =>
            (token == ct ? Interlocked.Exchange(ref _spareAttemptSource, null) : null) ?? CancellationTokenSource.CreateLinkedTokenSource(token);

        private void ReturnAttemptSource(CancellationTokenSource source, CancellationToken token)
        {
            if (token != ct || !source.TryReset() || Interlocked.CompareExchange(ref _spareAttemptSource, source, null) is not null)
            {
                source.Dispose();
            }
        }

        public void DisposeSpareSources() => Interlocked.Exchange(ref _spareAttemptSource, null)?.Dispose();

        /// <summary>One attempt, following redirects. With <paramref name="retry"/> (the first attempt), a retryable outcome or
        /// error continues in <see cref="RetryAsync"/>.</summary>
        private async Task<HttpOutcome> SendFollowingRedirectsAsync(PreparedRequest request, LogContext context, int attempt, TimeSpan timeout, bool applyAuth,
            CancellationToken token, StepRetry? retry)
        {
            HttpOutcome outcome;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo? error = null;
            var attemptCts = RentAttemptSource(token);
            try
            {
                attemptCts.CancelAfter(timeout);
                var method = request.Method;
                var body = request.Body;
                var url = request.Url;
                for (var hop = 0; ; hop++)
                {
                    if (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)
                    {
                        throw new RunFailedException($"Refusing to request '{redactor.Redact(url.ToString())}': only http and https URLs are allowed.");
                    }
                    var credentialHost = MaySendCredentials(url);
                    if (!credentialHost)
                    {
                        RefuseSecretsOutsideCredentialHosts(request, url, body, context, redirected: hop > 0);
                    }
                    var auth = applyAuth && credentialHost ? await CurrentAuthAsync().ConfigureAwait(false) : null;
                    var target = auth is { Query.Count: > 0 } ? AppendQuery(url, auth.Query) : url;
                    using var message = new HttpRequestMessage(method, target);
                    foreach (var (name, value) in request.Headers)
                    {
                        if (!credentialHost && (request.SecretHeaders?.Contains(name) == true || redactor.ContainsSecret(value)))
                        {
                            continue; // a redirect to another host: headers that carry secrets are dropped (as browsers drop Authorization)
                        }
                        message.Headers.TryAddWithoutValidation(name, value);
                    }
                    if (auth is not null)
                    {
                        foreach (var (name, value) in auth.Headers)
                        {
                            message.Headers.Remove(name);
                            message.Headers.TryAddWithoutValidation(name, value);
                        }
                    }
                    if (body is not null)
                    {
                        message.Content = new ByteArrayContent(body.Bytes);
                        var contentType = request.Headers.FirstOrDefault(h => h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)).Value ?? body.ContentType;
                        message.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                    }
                    var started = Stopwatch.GetTimestamp();
                    var at = DateTimeOffset.UtcNow;
                    HttpResponseMessage response;
                    try
                    {
                        response = await runner.Http.SendAsync(message, attemptCts.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        var failure = Translate(ex, attemptCts, token, timeout);
                        MarkIfRedirected(failure, hop);
                        await LogAsync(new StepLogEntry(context.StepId, method.Method, Shown(request, url, target), null, Elapsed(started), 0, attempt, null,
                            redactor.Redact(failure), context.Page, context.Item, At: at)).ConfigureAwait(false);
                        if (ReferenceEquals(failure, ex))
                        {
                            throw;
                        }
                        throw failure;
                    }
                    using (response)
                    {
                        var status = (int)response.StatusCode;
                        if (status is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
                        {
                            await LogAsync(new StepLogEntry(context.StepId, method.Method, Shown(request, url, target), status, Elapsed(started), 0, attempt, null,
                                null, context.Page, context.Item, At: at)).ConfigureAwait(false);
                            if (hop >= _options.MaxRedirects)
                            {
                                throw new RunFailedException($"Too many redirects (more than {_options.MaxRedirects}) starting at {Shown(request, request.Url)}.");
                            }
                            var next = new Uri(url, location);
                            if (request.SensitiveBody && !SameAuthority(next, url))
                            {
                                throw new RunFailedException($"Refusing to follow a redirect of a credential request from {url.Host} to {redactor.Redact(next.Host)}.");
                            }
                            if (status == 303 || (status is 301 or 302 && method == HttpMethod.Post))
                            {
                                method = status == 303 && method == HttpMethod.Head ? HttpMethod.Head : HttpMethod.Get;
                                body = null;
                            }
                            url = next;
                            continue;
                        }
                        string text;
                        byte[] utf8;
                        long downloaded = -1, read = 0;
                        var contentType = ContentTypeOf(response);
                        try
                        {
                            if (request.Download is { } sink && status is >= 200 and < 300)
                            {
                                downloaded = await DownloadIntoAsync(response, sink, attemptCts.Token).ConfigureAwait(false);
                                (text, utf8) = ("", []);
                            }
                            else
                            {
                                (text, utf8, read) = await ReadCappedAsync(response, contentType.Charset, attemptCts.Token).ConfigureAwait(false);
                            }
                        }
                        catch (Exception ex)
                        {
                            var failure = Translate(ex, attemptCts, token, timeout);
                            MarkIfRedirected(failure, hop);
                            await LogAsync(new StepLogEntry(context.StepId, method.Method, Shown(request, url, target), status, Elapsed(started), 0, attempt, null,
                                redactor.Redact(failure), context.Page, context.Item, At: at)).ConfigureAwait(false);
                            if (ReferenceEquals(failure, ex))
                            {
                                throw;
                            }
                            throw failure;
                        }
                        var bytes = downloaded >= 0 ? downloaded : response.Content.Headers.ContentLength ?? read;
                        if (Interlocked.Add(ref _responseBytes, utf8.Length) > _options.MaxRunResponseBytes)
                        {
                            throw new ResponseTooLargeException(
                                $"The run has read more than {_options.MaxRunResponseBytes} bytes of responses in all; fetch fewer pages (paginate.max_pages) or items.");
                        }
                        outcome = new HttpOutcome(status, url, text, ResponseBody.Read(text, utf8), RetryAfter(response), Links(response), auth?.Token, bytes)
                        {
                            Redirected = hop > 0,
                            MediaType = contentType.MediaType,
                        };
                        await LogAsync(new StepLogEntry(context.StepId, method.Method, Shown(request, url, target), status, Elapsed(started), bytes, attempt,
                            request.SensitiveBody ? null : redactor.RedactTruncated(text, _options.LoggedBodyChars), status >= 400 ? $"HTTP {status}" : null, context.Page, context.Item, At: at)).ConfigureAwait(false);
                        break;
                    }
                }
            }
            catch (Exception ex) when (retry is not null && retry.ShouldRetry(null, ex))
            {
                error = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
                outcome = null!;
            }
            finally
            {
                ReturnAttemptSource(attemptCts, token);
            }
            if (retry is not null && (error is not null || retry.ShouldRetry(outcome, null)))
            {
                return await RetryAsync(request, retry, context, timeout, applyAuth, error is null ? outcome : null, error).ConfigureAwait(false);
            }
            return outcome;
        }

        /// <summary>
        /// Secrets (credential fields, tokens obtained, in any encoded form) go only to the base_url host and
        /// allowed_hosts, whatever templating put them where: checked on the final request of every hop. A request
        /// that names another host with a secret in its URL, headers or body fails; after a redirect to another host,
        /// secret-carrying headers are dropped instead (the caller skips them), but a secret in the URL or the
        /// re-sent body still fails.
        /// </summary>
        private void RefuseSecretsOutsideCredentialHosts(PreparedRequest request, Uri url, RequestBody? body, LogContext context, bool redirected)
        {
            string? where = null;
            if ((!redirected && request.SecretInUrl)
                || redactor.ContainsSecret(url.OriginalString) || redactor.ContainsSecret(url.AbsoluteUri) || redactor.ContainsSecret(url.ToString()))
            {
                where = "its URL";
            }
            else if (!redirected && (request.SecretHeaders is { Count: > 0 } || request.Headers.Exists(h => redactor.ContainsSecret(h.Value))))
            {
                where = "a header";
            }
            else if (body is not null && (request.SecretInBody || request.SensitiveBody || redactor.ContainsSecret(Encoding.UTF8.GetString(body.Bytes))))
            {
                where = "its body";
            }
            if (where is null)
            {
                return;
            }
            var host = redactor.Redact(HostName(url));
            var rule = _baseUrl.Scheme == Uri.UriSchemeHttps && url.Scheme == Uri.UriSchemeHttp && _authHosts.Contains(HostName(url))
                ? "credentials of an https base_url are never sent over plain http"
                : "a request that carries a credential or token may go only to the base_url host and the hosts in allowed_hosts";
            throw new RunFailedException($"Step '{context.StepId}': refused to send a request to '{host}'{(redirected ? " (after a redirect)" : "")}: " +
                                         $"{where} carries credential material, and {rule}. If '{host}' is meant to receive it, list it in allowed_hosts.");
        }

        private const string AfterRedirect = "plugboard.after-redirect";

        /// <summary>A failure after a redirect means an earlier hop reached the server (which may have processed it).</summary>
        private static void MarkIfRedirected(Exception failure, int hop)
        {
            if (hop > 0)
            {
                failure.Data[AfterRedirect] = true;
            }
        }

        private static Exception Translate(Exception ex, CancellationTokenSource attemptCts, CancellationToken outer, TimeSpan timeout)
        {
            if (ex is OperationCanceledException && attemptCts.IsCancellationRequested && !outer.IsCancellationRequested)
            {
                return new StepTimeoutException($"The request did not complete within the step timeout of {timeout.TotalSeconds:0.###} s.");
            }
            for (var e = ex; e is not null; e = e.InnerException)
            {
                if (e is SsrfBlockedException ssrf)
                {
                    return ssrf;
                }
            }
            return ex;
        }

        private static long Elapsed(long started) => (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;

        private static TimeSpan? RetryAfter(HttpResponseMessage response)
        {
            var header = response.Headers.RetryAfter;
            if (header?.Delta is { } delta)
            {
                return delta;
            }
            if (header?.Date is { } date)
            {
                var wait = date - DateTimeOffset.UtcNow;
                return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
            }
            return null;
        }

        private static string[] Links(HttpResponseMessage response) =>
            response.Headers.TryGetValues("Link", out var values) ? [.. values] : [];

        /// <summary>
        /// Buffers the body (decompressed) up to the size cap; returns it as text (decoded by its charset, UTF-8 by
        /// default, <paramref name="charset"/> otherwise), as UTF-8 bytes for the JSON reader, and how many bytes it had. A body of announced length (not
        /// chunked) is read straight into an array of that length; one of unknown length (chunked, or decompressed) grows
        /// a buffer up to the cap; HEAD, 204 and 304 have none.
        /// </summary>
        private async ValueTask<(string Text, byte[] Utf8, long Bytes)> ReadCappedAsync(HttpResponseMessage response, string? charset, CancellationToken token)
        {
            var max = _options.MaxResponseBytes;
            if (response.Content.Headers.ContentLength is { } announced && announced > max)
            {
                throw new ResponseTooLargeException($"The response is {announced} bytes, more than the limit of {max} bytes.");
            }
            byte[] bytes;
            if (response.StatusCode is System.Net.HttpStatusCode.NoContent or System.Net.HttpStatusCode.NotModified || response.RequestMessage?.Method == HttpMethod.Head)
            {
                bytes = [];
            }
            else if (response.Content.Headers.ContentLength is { } length && response.Headers.TransferEncodingChunked != true)
            {
                bytes = length == 0 ? [] : new byte[length];
                if (length > 0)
                {
                    try
                    {
                        // The headers are in: opening the body stream does no I/O. The handler ends the stream at the
                        // announced length, and fails it if the connection ends before.
                        await using var stream = response.Content.ReadAsStream(token);
                        var read = await stream.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, token).ConfigureAwait(false);
                        if (read < bytes.Length)
                        {
                            bytes = bytes[..read];
                        }
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException)
                    {
                        // As HttpContent reports a failed read of a body (a transport error, retried as such).
                        throw new HttpRequestException(HttpRequestError.ResponseEnded, "Error while copying content to a stream.", e);
                    }
                }
            }
            else
            {
                try
                {
                    await response.Content.LoadIntoBufferAsync(max, token).ConfigureAwait(false);
                }
                catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
                {
                    throw new ResponseTooLargeException($"The response exceeded the limit of {max} bytes; stopped reading.");
                }
                bytes = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
            }
            if (string.IsNullOrEmpty(charset) || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            {
                var bom = bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;
                return (Encoding.UTF8.GetString(bytes, bom, bytes.Length - bom), bom == 0 ? bytes : bytes[bom..], bytes.Length);
            }
            // Other charsets: decoded as HttpContent does (its preamble dropped), and re-encoded for the JSON reader.
            Encoding encoding;
            try
            {
                encoding = Encoding.GetEncoding(charset);
            }
            catch (ArgumentException e)
            {
                // What HttpContent.ReadAsStringAsync throws for a charset it does not know.
                throw new InvalidOperationException("The character set provided in ContentType is invalid.", e);
            }
            var preamble = encoding.Preamble;
            var skip = preamble.Length > 0 && bytes.AsSpan().StartsWith(preamble) ? preamble.Length : 0;
            var text = encoding.GetString(bytes, skip, bytes.Length - skip);
            return (text, Encoding.UTF8.GetBytes(text), bytes.Length);
        }

        /// <summary>The response's media type and charset. The usual one-value header without quotes is read from its raw
        /// text (no header object parsed per response); anything else is parsed as HttpContent parses it (an invalid one
        /// has neither).</summary>
        private static (string? MediaType, string? Charset) ContentTypeOf(HttpResponseMessage response)
        {
            if (!response.Content.Headers.NonValidated.TryGetValues("Content-Type", out var values))
            {
                return (null, null);
            }
            var text = values.ToString();
            if (values.Count != 1 || text.AsSpan().IndexOfAny(',', '"') >= 0)
            {
                return System.Net.Http.Headers.MediaTypeHeaderValue.TryParse(text, out var parsed)
                    ? (parsed.MediaType, parsed.CharSet?.Trim('"', ' '))
                    : (null, null);
            }
            var raw = text.AsSpan();
            var semicolon = raw.IndexOf(';');
            var mediaType = (semicolon < 0 ? raw : raw[..semicolon]).Trim();
            string? charset = null;
            for (var rest = semicolon < 0 ? [] : raw[(semicolon + 1)..]; !rest.IsEmpty && charset is null;)
            {
                var next = rest.IndexOf(';');
                var parameter = (next < 0 ? rest : rest[..next]).Trim();
                rest = next < 0 ? [] : rest[(next + 1)..];
                var equals = parameter.IndexOf('=');
                if (equals > 0 && parameter[..equals].Trim().Equals("charset", StringComparison.OrdinalIgnoreCase))
                {
                    charset = parameter[(equals + 1)..].Trim().ToString(); // the first, as the header parser takes it
                }
            }
            return (mediaType.IsEmpty ? null : mediaType.ToString(), charset);
        }

        /// <summary>Streams a download's body into its sink (emptied first: a retry starts over), refusing more than its limit.</summary>
        private static async Task<long> DownloadIntoAsync(HttpResponseMessage response, DownloadSink sink, CancellationToken token)
        {
            if (response.Content.Headers.ContentLength is { } length && length > sink.MaxBytes)
            {
                throw new ResponseTooLargeException($"The file is {length} bytes, more than the limit of {sink.MaxBytes} bytes.");
            }
            sink.Destination.SetLength(0);
            sink.Destination.Position = 0;
            await using var body = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(81_920);
            try
            {
                long total = 0;
                int read;
                while ((read = await body.ReadAsync(buffer, token).ConfigureAwait(false)) > 0)
                {
                    total += read;
                    if (total > sink.MaxBytes)
                    {
                        throw new ResponseTooLargeException($"The file exceeded the limit of {sink.MaxBytes} bytes; stopped reading.");
                    }
                    await sink.Destination.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
                }
                await sink.Destination.FlushAsync(token).ConfigureAwait(false);
                return total;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private async ValueTask LogAsync(StepLogEntry entry)
        {
            lock (log)
            {
                log.Add(entry);
            }
            if (observer is not null)
            {
                await observer.OnStepAsync(entry, ct).ConfigureAwait(false);
            }
        }

        private StepRetry BuildPipeline(StepSpec? step, bool refreshGrant = false) =>
            runner._pipelines.GetValue(step ?? (refreshGrant ? RefreshPipelineKey : AuthPipelineKey), _ => CreatePipeline(step, refreshGrant));

        /// <summary>
        /// Retries never duplicate a write by default: a request that may be repeated (GET, HEAD, OPTIONS, one with an
        /// Idempotency-Key header, a step with <c>retry.idempotent</c>, client-credentials and session logins) is retried
        /// on timeouts, transport errors, 429 and 5xx; any other (POST, PUT, PATCH, DELETE, a refresh grant) only when
        /// the answer proves it was not processed: the connection was refused or the name did not resolve, or 429/503
        /// came with Retry-After.
        /// </summary>
        private StepRetry CreatePipeline(StepSpec? step, bool refreshGrant)
        {
            var maxAttempts = step?.Retry?.MaxAttempts ?? _options.DefaultMaxAttempts;
            if (maxAttempts <= 1)
            {
                return new StepRetry(ResiliencePipeline<HttpOutcome>.Empty, static (_, _) => false);
            }
            var onStatus = step?.Retry?.OnStatus is { Count: > 0 } codes ? codes.ToHashSet() : null;
            var repeatable = step is null ? !refreshGrant
                : step.Retry?.Idempotent == true || step.Request.Method.ToUpperInvariant() is "GET" or "HEAD" or "OPTIONS"
                  || step.Request.Headers.Keys.Any(h => h.Equals("Idempotency-Key", StringComparison.OrdinalIgnoreCase)
                                                        || h.Equals("X-Idempotency-Key", StringComparison.OrdinalIgnoreCase));
            bool ShouldRetry(HttpOutcome? result, Exception? error)
            {
                // After a redirect an earlier hop reached the server: only a request that may be repeated goes again.
                if (error is not null)
                {
                    return repeatable ? IsTransient(error) : !error.Data.Contains(AfterRedirect) && NeverSent(error);
                }
                if (result is not { } r || !(onStatus?.Contains(r.Status) ?? r.Status is 429 or >= 500))
                {
                    return false;
                }
                return repeatable || (!r.Redirected && r.Status is 429 or 503 && r.RetryAfter is not null);
            }
            var baseDelay = _options.RetryBaseDelay;
            var maxDelay = _options.MaxRetryDelay;
            var pipeline = new ResiliencePipelineBuilder<HttpOutcome>()
                .AddRetry(new RetryStrategyOptions<HttpOutcome>
                {
                    MaxRetryAttempts = maxAttempts - 1,
                    ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args.Outcome.Result, args.Outcome.Exception)),
                    DelayGenerator = args =>
                    {
                        if (args.Outcome.Result?.RetryAfter is { } retryAfter)
                        {
                            return ValueTask.FromResult<TimeSpan?>(retryAfter < maxDelay ? retryAfter : maxDelay);
                        }
                        // Exponential backoff with full jitter: uniform in [0, min(max, base * 2^attempt)].
                        var ceiling = Math.Min(maxDelay.TotalMilliseconds, baseDelay.TotalMilliseconds * Math.Pow(2, args.AttemptNumber));
                        return ValueTask.FromResult<TimeSpan?>(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling));
                    },
                    MaxDelay = maxDelay,
                })
                .Build();
            return new StepRetry(pipeline, ShouldRetry);
        }

        /// <summary>The request never reached a server: it cannot have been processed.</summary>
        private static bool NeverSent(Exception ex)
        {
            if (ex is HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError } and not { InnerException: SsrfBlockedException })
            {
                return true;
            }
            for (var e = ex; e is not null; e = e.InnerException)
            {
                if (e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
                {
                    return true;
                }
            }
            return false;
        }

        private static bool IsTransient(Exception ex) => ex switch
        {
            SsrfBlockedException or ResponseTooLargeException or RunFailedException or OperationCanceledException => false,
            StepTimeoutException => true,
            HttpRequestException http => http.InnerException is not SsrfBlockedException && http.HttpRequestError is not HttpRequestError.ConfigurationLimitExceeded,
            IOException or System.Net.Sockets.SocketException => true,
            _ => false,
        };
    }
}
