using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Net;
using Plugboard.Engine.Templating;
using Polly;
using Polly.Retry;

namespace Plugboard.Engine.Running;

/// <summary>
/// Runs a manifest: validates inputs, executes steps in order (conditions, fan-out, pagination, extraction) over the
/// host's HTTP handler (which must not follow redirects itself; an <see cref="HttpMessageInvoker"/> over the handler
/// skips HttpClient's per-request cancellation plumbing, which the runner's own timeouts make redundant), with retries, timeouts, a response size
/// cap, credentials applied only to the manifest's own hosts, and every logged string redacted.
/// </summary>
public sealed class ConnectorRunner(HttpMessageInvoker http, RunnerOptions options)
{
    private static readonly object AuthPipelineKey = new();
    private static readonly object RefreshPipelineKey = new();
    private readonly TemplateEngine _templates = new(options.MaxTemplateOutputChars);

    // Pipelines are stateless; building one (options validation, telemetry) costs more than a loopback request.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, StepRetry> _pipelines = new();
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Manifest, JToken> _outputs = new();

    public async Task<RunResult> RunAsync(Manifest manifest, RunRequest request, IRunObserver? observer, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(request);
        var redactor = new Redactor(request.Credentials.Values);
        var log = new List<StepLogEntry>();
        using var execution = CancellationTokenSource.CreateLinkedTokenSource(ct);
        execution.CancelAfter(options.ExecutionTimeout);
        var run = new Run(this, manifest, request, redactor, log, observer, execution.Token);
        try
        {
            var output = await run.ExecuteAsync().ConfigureAwait(false);
            return new RunResult(RunStatus.Succeeded, output, null, Snapshot(log));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return new RunResult(RunStatus.Cancelled, null, "The run was cancelled.", Snapshot(log));
        }
        catch (OperationCanceledException) when (execution.IsCancellationRequested)
        {
            return new RunResult(RunStatus.TimedOut, null, $"The run exceeded its execution timeout of {options.ExecutionTimeout.TotalSeconds:0.###} s.", Snapshot(log));
        }
        catch (StepTimeoutException ex)
        {
            return new RunResult(RunStatus.TimedOut, null, redactor.Redact(ex), Snapshot(log));
        }
        catch (Exception ex)
        {
            return new RunResult(RunStatus.Failed, null, redactor.Redact(ex), Snapshot(log));
        }
        finally
        {
            run.DisposeSpareSources();
        }
    }

    private static List<StepLogEntry> Snapshot(List<StepLogEntry> log)
    {
        lock (log)
        {
            return [.. log];
        }
    }

    public RunnerOptions Options => options;
    internal HttpMessageInvoker Http => http;
    internal TemplateEngine Templates => _templates;

    /// <summary>One execution: its model, auth state, redactor and log.</summary>
    private sealed class Run(ConnectorRunner runner, Manifest manifest, RunRequest request, Redactor redactor, List<StepLogEntry> log, IRunObserver? observer, CancellationToken ct)
    {
        private static readonly HashSet<string> Falsy = new(StringComparer.OrdinalIgnoreCase) { "", "false", "0", "null", "nil" };
        private readonly RunnerOptions _options = runner.Options;
        private readonly TemplateEngine _templates = runner.Templates;
        private readonly Lazy<SemaphoreSlim> _authGate = new(() => new SemaphoreSlim(1, 1));
        private TemplateModel _model = null!;
        private Uri _baseUrl = null!;
        private string _basePath = "";
        private HashSet<string> _authHosts = [];
        private Dictionary<string, string> _credentials = new(request.Credentials, StringComparer.Ordinal);
        private AuthMaterial? _auth;
        private DateTimeOffset _authExpiresAt = DateTimeOffset.MaxValue;

        // One spare attempt-timeout source per run, reset and reused (steps mostly run one request after another).
        private CancellationTokenSource? _spareAttemptSource;
        private long _responseBytes;

        public async Task<JsonNode?> ExecuteAsync()
        {
            var inputs = Arguments("input", manifest.Inputs, request.Inputs);
            var config = Arguments("config", manifest.Config, request.Config);
            _model = new TemplateModel { Inputs = inputs, Config = config, Credentials = CredentialsObject(_credentials), ExecutionId = request.ExecutionId };
            var baseUrl = (await _templates.RenderAsync(manifest.BaseUrl, _model).ConfigureAwait(false)).Trim();
            if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps))
            {
                throw new RunFailedException($"base_url '{baseUrl}' is not an absolute http(s) URL.");
            }
            _baseUrl = parsed;
            _basePath = parsed.GetLeftPart(UriPartial.Path).TrimEnd('/');
            _authHosts = new HashSet<string>(manifest.AllowedHosts.Select(h => h.Trim().ToLowerInvariant()), StringComparer.OrdinalIgnoreCase) { HostName(parsed) };
            await PrepareAuthAsync(force: false, rejected: null).ConfigureAwait(false);

            for (var i = 0; i < manifest.Steps.Count; i++)
            {
                await RunStepAsync(manifest.Steps[i]).ConfigureAwait(false);
            }
            if (manifest.Output is null)
            {
                return JsonInterop.ToNode(_model.Steps);
            }
            var output = await _templates.EvaluateTreeAsync(runner._outputs.GetValue(manifest, static m => JsonInterop.ToToken(m.Output)), _model).ConfigureAwait(false);
            RedactSecretsIn(output);
            return JsonInterop.ToNode(output);
        }

        private static JObject CredentialsObject(Dictionary<string, string> fields)
        {
            var obj = new JObject();
            foreach (var (key, value) in fields)
            {
                obj[key] = value;
            }
            return obj;
        }

        private static JObject Arguments(string kind, IReadOnlyDictionary<string, ParameterSpec> specs, JsonObject given)
        {
            var issues = ManifestArguments.Check(specs, given, kind, kind, refuseUndeclared: false);
            if (issues.Count > 0)
            {
                throw new RunFailedException($"Invalid {kind}s: {string.Join("; ", issues.Select(i => i.Message))}.");
            }
            var result = given.Count == 0 ? [] : JsonInterop.ToObject(given);
            foreach (var (name, spec) in specs)
            {
                if (spec.Default is not null && (!given.TryGetPropertyValue(name, out var value) || value is null))
                {
                    result[name] = JsonInterop.ToToken(spec.Default);
                }
            }
            return result;
        }

        private void RedactSecretsIn(JToken token)
        {
            IEnumerable<JToken> all = token is JContainer container ? container.DescendantsAndSelf() : [token];
            foreach (var value in all.OfType<JValue>().Where(v => v.Type == JTokenType.String).ToList())
            {
                var text = (string)value!;
                var redacted = redactor.RedactSecretValues(text);
                if (!ReferenceEquals(text, redacted))
                {
                    value.Value = redacted;
                }
            }
        }

        // ---------------------------------------------------------------- steps

        private async Task RunStepAsync(StepSpec step)
        {
            ct.ThrowIfCancellationRequested();
            if (step.When is not null)
            {
                var rendered = (await _templates.RenderAsync(step.When, _model).ConfigureAwait(false)).Trim();
                if (Falsy.Contains(rendered))
                {
                    await LogAsync(new StepLogEntry(step.Id, "", "", null, 0, 0, 0, null, null, Skipped: true, At: DateTimeOffset.UtcNow)).ConfigureAwait(false);
                    _model.Steps[step.Id] = new JObject();
                    return;
                }
            }
            var pipeline = BuildPipeline(step);
            JObject result;
            if (step.ForEach is not null)
            {
                var path = step.ForEach.Split('.');
                var list = _model.Steps[path[1]]?[path[2]];
                var items = list switch
                {
                    JArray array => array.ToList(),
                    null or { Type: JTokenType.Null } => [],
                    _ => [list],
                };
                var results = new JObject[items.Count];
                var concurrency = Math.Max(1, step.Concurrency ?? _options.DefaultForEachConcurrency);
                await Parallel.ForEachAsync(Enumerable.Range(0, items.Count), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct },
                    async (index, _) => results[index] = await RunInstanceAsync(step, pipeline, _model.With(item: items[index], index: index, stepId: step.Id), index)
                        .ConfigureAwait(false))
                    .ConfigureAwait(false);
                result = [];
                foreach (var name in step.Extract.Keys)
                {
                    result[name] = new JArray(results.Select(r => r[name] ?? JValue.CreateNull()));
                }
            }
            else
            {
                result = await RunInstanceAsync(step, pipeline, _model.With(stepId: step.Id), null).ConfigureAwait(false);
            }
            _model.Steps[step.Id] = result;
        }

        // Not async itself, so an unpaginated step costs one state machine less per request.
        private Task<JObject> RunInstanceAsync(StepSpec step, StepRetry pipeline, TemplateModel model, int? item) =>
            step.Paginate is { } paginate ? RunPagesAsync(step, paginate, pipeline, model, item) : SendAndExtractAsync(step, pipeline, model, item);

        private async Task<JObject> SendAndExtractAsync(StepSpec step, StepRetry pipeline, TemplateModel model, int? item) =>
            ExtractAndRelease(step, await SendStepAsync(step, pipeline, model, null, null, item, null).ConfigureAwait(false));

        private async Task<JObject> RunPagesAsync(StepSpec step, PaginateSpec paginate, StepRetry pipeline, TemplateModel model, int? item)
        {
            var maxPages = Math.Min(paginate.MaxPages ?? _options.MaxPages, _options.MaxPages);
            var limit = paginate.Limit ?? paginate.Size;
            var accumulated = new JArray();
            JObject? first = null;
            string? cursor = null;
            Uri? nextUrl = null;
            for (var i = 0; i < maxPages; i++)
            {
                var number = paginate.Type == "page" ? paginate.Start + i : i + 1;
                var offset = i * (limit ?? 0);
                var page = new JObject { ["number"] = number, ["offset"] = offset, ["limit"] = limit, ["cursor"] = cursor };
                var extra = new List<KeyValuePair<string, string>>();
                switch (paginate.Type)
                {
                    case "offset":
                        extra.Add(new(paginate.LimitParam, (limit ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        extra.Add(new(paginate.OffsetParam, offset.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        break;
                    case "page":
                        extra.Add(new(paginate.PageParam, number.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        if (paginate.SizeParam is not null && paginate.Size is { } size)
                        {
                            extra.Add(new(paginate.SizeParam, size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        }
                        break;
                    case "cursor" when cursor is not null:
                        extra.Add(new(paginate.CursorParam!, cursor));
                        break;
                }
                var outcome = await SendStepAsync(step, pipeline, model.With(page: page), extra, nextUrl, item, i + 1).ConfigureAwait(false);
                var extracted = Extract(step, outcome);
                first ??= extracted;
                var items = paginate.Items is null ? null : extracted[paginate.Items];
                var count = 0;
                switch (items)
                {
                    case JArray array:
                        foreach (var element in array)
                        {
                            accumulated.Add(element);
                        }
                        count = array.Count;
                        break;
                    case null or { Type: JTokenType.Null }:
                        break;
                    default:
                        accumulated.Add(items);
                        count = 1;
                        break;
                }
                if (paginate.StopWhenEmpty && count == 0)
                {
                    break;
                }
                switch (paginate.Type)
                {
                    case "cursor":
                        var next = outcome.Select(paginate.CursorPath!);
                        var nextCursor = next is null or { Type: JTokenType.Null } ? null : next.ToString();
                        if (string.IsNullOrEmpty(nextCursor) || nextCursor == cursor)
                        {
                            return Finish(first, paginate, accumulated);
                        }
                        cursor = nextCursor;
                        break;
                    case "link":
                        nextUrl = NextLink(outcome);
                        if (nextUrl is null)
                        {
                            return Finish(first, paginate, accumulated);
                        }
                        break;
                    case "next_url":
                        var value = outcome.Select(paginate.NextUrlPath!);
                        var text = value is null or { Type: JTokenType.Null } ? null : value.ToString();
                        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(outcome.Url, text, out var resolved) || resolved == outcome.Url)
                        {
                            return Finish(first, paginate, accumulated);
                        }
                        nextUrl = resolved;
                        break;
                }
            }
            return Finish(first ?? [], paginate, accumulated);
        }

        private static JObject Finish(JObject first, PaginateSpec paginate, JArray accumulated)
        {
            if (paginate.Items is not null)
            {
                first[paginate.Items] = accumulated;
            }
            return first;
        }

        private static Uri? NextLink(HttpOutcome outcome)
        {
            foreach (var header in outcome.Link)
            {
                foreach (var part in header.Split(','))
                {
                    var segments = part.Split(';');
                    var target = segments[0].Trim();
                    if (target.Length < 2 || target[0] != '<' || target[^1] != '>')
                    {
                        continue;
                    }
                    var isNext = segments.Skip(1).Any(s =>
                    {
                        var kv = s.Split('=', 2);
                        return kv.Length == 2 && kv[0].Trim().Equals("rel", StringComparison.OrdinalIgnoreCase)
                               && kv[1].Trim().Trim('"').Split(' ').Contains("next", StringComparer.OrdinalIgnoreCase);
                    });
                    if (isNext && Uri.TryCreate(outcome.Url, target[1..^1], out var uri))
                    {
                        return uri;
                    }
                }
            }
            return null;
        }

        /// <summary>Extracts, then hands the parsed body's pooled buffers back (nothing reads it afterwards).</summary>
        private static JObject ExtractAndRelease(StepSpec step, HttpOutcome outcome)
        {
            try
            {
                return Extract(step, outcome);
            }
            finally
            {
                outcome.Parsed.Dispose();
            }
        }

        private static JObject Extract(StepSpec step, HttpOutcome outcome)
        {
            var result = new JObject();
            foreach (var (name, path) in step.Extract)
            {
                result[name] = outcome.Select(path);
            }
            return result;
        }

        private async Task<HttpOutcome> SendStepAsync(StepSpec step, StepRetry pipeline, TemplateModel model,
            List<KeyValuePair<string, string>>? extraQuery, Uri? explicitUrl, int? item, int? page)
        {
            var prepared = await PrepareAsync(step.Request, model, extraQuery, explicitUrl).ConfigureAwait(false);
            var context = new LogContext(step.Id, page, item);
            var timeout = StepTimeout(step);
            var outcome = await SendAsync(prepared, pipeline, context, timeout, applyAuth: true).ConfigureAwait(false);
            if (outcome.Status == 401 && outcome.AuthToken is not null && manifest.Auth.Type is "oauth2_refresh_token" or "oauth2_client_credentials")
            {
                // The token was refused before its expiry: refresh once (one refresh at a time) and send again.
                await PrepareAuthAsync(force: true, rejected: outcome.AuthToken).ConfigureAwait(false);
                outcome = await SendAsync(prepared, pipeline, context, timeout, applyAuth: true).ConfigureAwait(false);
            }
            var expected = step.ExpectStatus is { Count: > 0 } codes ? codes.Contains(outcome.Status) : outcome.Status is >= 200 and < 300;
            if (!expected)
            {
                throw new RunFailedException($"Step '{step.Id}': {prepared.Method} {Shown(prepared, outcome.Url)} returned HTTP {outcome.Status}" +
                                             $"{(outcome.Attempts > 1 ? $" after {outcome.Attempts} attempts" : "")}: {redactor.RedactTruncated(outcome.Body, 300)}");
            }
            if (step.ErrorWhen is not null && outcome.HasBody)
            {
                var error = outcome.Select(step.ErrorWhen);
                if (IsErrorValue(error))
                {
                    var message = error is JValue { Type: JTokenType.String } s ? (string)s! : error.ToString(Newtonsoft.Json.Formatting.None);
                    throw new RunFailedException($"Step '{step.Id}': the API reported an error (HTTP {outcome.Status}): {redactor.RedactTruncated(message, 500)}");
                }
            }
            return outcome;
        }

        private static bool IsErrorValue(JToken token) => token.Type switch
        {
            JTokenType.Null or JTokenType.Undefined => false,
            JTokenType.Boolean => (bool)token,
            JTokenType.String => ((string)token!).Length > 0 && !((string)token!).Equals("false", StringComparison.OrdinalIgnoreCase),
            JTokenType.Array or JTokenType.Object => token.HasValues,
            _ => true,
        };

        private TimeSpan StepTimeout(StepSpec? step) => step?.TimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : _options.DefaultStepTimeout;

        // ---------------------------------------------------------------- requests

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

        /// <summary>
        /// The first attempt runs outside the retry pipeline, since most requests succeed at once; a retryable outcome
        /// (or transient error) then enters Polly with that outcome as its first attempt, so Polly's delays (Retry-After,
        /// backoff with jitter) and attempt limit apply exactly as if it had run every attempt.
        /// </summary>
        private async Task<HttpOutcome> SendAsync(PreparedRequest request, StepRetry retry, LogContext context, TimeSpan timeout, bool applyAuth)
        {
            HttpOutcome? first = null;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo? firstError = null;
            try
            {
                first = await SendFollowingRedirectsAsync(request, context, 1, timeout, applyAuth, ct).ConfigureAwait(false);
                if (!retry.ShouldRetry(first, null))
                {
                    return first;
                }
            }
            catch (Exception ex) when (retry.ShouldRetry(null, ex))
            {
                firstError = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
            }
            return await RetryAsync(request, retry, context, timeout, applyAuth, first, firstError).ConfigureAwait(false);
        }

        // Separate from SendAsync so the closure Polly's callback needs is allocated only when a request is retried.
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
                var outcome = await SendFollowingRedirectsAsync(request, context, number, timeout, applyAuth, token).ConfigureAwait(false);
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

        private async Task<HttpOutcome> SendFollowingRedirectsAsync(PreparedRequest request, LogContext context, int attempt, TimeSpan timeout, bool applyAuth, CancellationToken token)
        {
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
                        try
                        {
                            (text, utf8) = await ReadCappedAsync(response, attemptCts.Token).ConfigureAwait(false);
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
                        var bytes = response.Content.Headers.ContentLength ?? utf8.Length;
                        if (Interlocked.Add(ref _responseBytes, utf8.Length) > _options.MaxRunResponseBytes)
                        {
                            throw new ResponseTooLargeException(
                                $"The run has read more than {_options.MaxRunResponseBytes} bytes of responses in all; fetch fewer pages (paginate.max_pages) or items.");
                        }
                        var outcome = new HttpOutcome(status, url, text, ResponseBody.Read(text, utf8), RetryAfter(response), Links(response), auth?.Token, bytes)
                        {
                            Redirected = hop > 0,
                        };
                        await LogAsync(new StepLogEntry(context.StepId, method.Method, Shown(request, url, target), status, Elapsed(started), bytes, attempt,
                            request.SensitiveBody ? null : redactor.RedactTruncated(text, _options.LoggedBodyChars), status >= 400 ? $"HTTP {status}" : null, context.Page, context.Item, At: at)).ConfigureAwait(false);
                        return outcome;
                    }
                }
            }
            finally
            {
                ReturnAttemptSource(attemptCts, token);
            }
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
        /// default) and as UTF-8 bytes for the JSON reader.
        /// </summary>
        private async Task<(string Text, byte[] Utf8)> ReadCappedAsync(HttpResponseMessage response, CancellationToken token)
        {
            var max = _options.MaxResponseBytes;
            if (response.Content.Headers.ContentLength is { } length && length > max)
            {
                throw new ResponseTooLargeException($"The response is {length} bytes, more than the limit of {max} bytes.");
            }
            try
            {
                await response.Content.LoadIntoBufferAsync(max, token).ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
            {
                throw new ResponseTooLargeException($"The response exceeded the limit of {max} bytes; stopped reading.");
            }
            var bytes = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
            var charset = response.Content.Headers.ContentType?.CharSet?.Trim('"', ' ');
            if (string.IsNullOrEmpty(charset) || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            {
                var bom = bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;
                return (Encoding.UTF8.GetString(bytes, bom, bytes.Length - bom), bom == 0 ? bytes : bytes[bom..]);
            }
            // Other charsets: decoded as HttpContent does, and re-encoded for the JSON reader.
            var text = await response.Content.ReadAsStringAsync(token).ConfigureAwait(false);
            return (text, Encoding.UTF8.GetBytes(text));
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

        // ---------------------------------------------------------------- auth

        private bool MaySendCredentials(Uri url)
        {
            if (!_authHosts.Contains(HostName(url)))
            {
                return false;
            }
            // Never downgrade: credentials of an https API are not sent over plain http.
            return !(_baseUrl.Scheme == Uri.UriSchemeHttps && url.Scheme == Uri.UriSchemeHttp);
        }

        private static bool SameAuthority(Uri a, Uri b) =>
            string.Equals(HostName(a), HostName(b), StringComparison.OrdinalIgnoreCase) && a.Port == b.Port && a.Scheme == b.Scheme;

        // The punycode form, computed only when the host has non-ASCII characters (IdnHost is costly on every request).
        private static string HostName(Uri url) =>
            url.HostNameType is UriHostNameType.Dns or UriHostNameType.IPv4 && System.Text.Ascii.IsValid(url.Host) ? url.Host : url.IdnHost;

        private async ValueTask<AuthMaterial?> CurrentAuthAsync()
        {
            if (manifest.Auth.Type is "oauth2_refresh_token" or "oauth2_client_credentials" && _authExpiresAt - TimeSpan.FromSeconds(60) <= DateTimeOffset.UtcNow)
            {
                await PrepareAuthAsync(force: false, rejected: null).ConfigureAwait(false);
            }
            return Volatile.Read(ref _auth);
        }

        private async Task PrepareAuthAsync(bool force, string? rejected)
        {
            var auth = manifest.Auth;
            switch (auth.Type)
            {
                case "api_key":
                    var value = await RenderSecretAsync(auth.Value!).ConfigureAwait(false);
                    var name = await _templates.RenderAsync(auth.Name!, _model).ConfigureAwait(false);
                    _auth = auth.In == "query" ? new AuthMaterial([], [new(name, value)], null) : new AuthMaterial([new(name, value)], [], null);
                    return;
                case "bearer":
                    _auth = Bearer(await RenderSecretAsync(auth.Token!).ConfigureAwait(false));
                    return;
                case "basic":
                    var user = await RenderSecretAsync(auth.Username!).ConfigureAwait(false);
                    var password = auth.Password is null ? "" : await RenderSecretAsync(auth.Password).ConfigureAwait(false);
                    var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
                    redactor.Add(basic);
                    _auth = new AuthMaterial([new("Authorization", "Basic " + basic)], [], null);
                    return;
                case "session":
                    await LoginAsync(auth.Session!).ConfigureAwait(false);
                    return;
                case "oauth2_client_credentials":
                case "oauth2_refresh_token":
                    await _authGate.Value.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        var current = Volatile.Read(ref _auth);
                        if (current is not null && (force ? current.Token != rejected : _authExpiresAt - TimeSpan.FromSeconds(60) > DateTimeOffset.UtcNow))
                        {
                            return; // another request of this run refreshed meanwhile
                        }
                        if (auth.Type == "oauth2_client_credentials")
                        {
                            await ClientCredentialsAsync(auth).ConfigureAwait(false);
                        }
                        else
                        {
                            await RefreshTokenAsync(auth, force, rejected).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        _authGate.Value.Release();
                    }
                    return;
                default:
                    _auth = null;
                    return;
            }
        }

        private static AuthMaterial Bearer(string token) => new([new("Authorization", "Bearer " + token)], [], token);

        private async Task<string> RenderSecretAsync(string template, Dictionary<string, string>? credentials = null)
        {
            var model = credentials is null ? _model : _model.With(credentials: CredentialsObject(credentials));
            var value = await _templates.RenderAsync(template, model).ConfigureAwait(false);
            redactor.Add(value);
            return value;
        }

        private async Task ClientCredentialsAsync(AuthSpec auth)
        {
            var fields = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
            if (auth.Scopes.Count > 0)
            {
                fields.Add(new("scope", string.Join(' ', auth.Scopes)));
            }
            if (auth.Audience is not null)
            {
                fields.Add(new("audience", await _templates.RenderAsync(auth.Audience, _model).ConfigureAwait(false)));
            }
            var (token, expiresIn, _) = await TokenRequestAsync(auth, fields, _credentials).ConfigureAwait(false);
            _authExpiresAt = DateTimeOffset.UtcNow + (expiresIn ?? TimeSpan.FromHours(1));
            Volatile.Write(ref _auth, Bearer(token));
        }

        private async Task RefreshTokenAsync(AuthSpec auth, bool force, string? rejected)
        {
            if (!force && Valid(_credentials) is { } existing)
            {
                Adopt(_credentials, existing);
                return;
            }
            async Task<IReadOnlyDictionary<string, string>> Refresh(IReadOnlyDictionary<string, string> fresh, CancellationToken token)
            {
                var freshFields = new Dictionary<string, string>(fresh, StringComparer.Ordinal);
                if (Valid(freshFields) is { } valid && valid.Token != rejected && (!force || fresh.GetValueOrDefault("access_token") != rejected))
                {
                    return fresh; // another run or process refreshed already
                }
                foreach (var value in fresh.Values)
                {
                    redactor.Add(value);
                }
                var refreshToken = await RenderSecretAsync(auth.RefreshToken!, freshFields).ConfigureAwait(false);
                var (accessToken, expiresIn, rotated) = await TokenRequestAsync(auth,
                    [new("grant_type", "refresh_token"), new("refresh_token", refreshToken)], freshFields).ConfigureAwait(false);
                freshFields["access_token"] = accessToken;
                freshFields["access_token_expires_at"] = TemplateEngine.FormatIso(DateTimeOffset.UtcNow + (expiresIn ?? TimeSpan.FromHours(1)));
                if (!string.IsNullOrEmpty(rotated))
                {
                    freshFields[CredentialField(auth.RefreshToken!) ?? "refresh_token"] = rotated;
                }
                return freshFields;
            }
            var stored = request.CredentialStore is { } store
                ? await store.UpdateAsync(Refresh, ct).ConfigureAwait(false)
                : await Refresh(_credentials, ct).ConfigureAwait(false);
            var updated = new Dictionary<string, string>(stored, StringComparer.Ordinal);
            foreach (var value in updated.Values)
            {
                redactor.Add(value);
            }
            Adopt(updated, Valid(updated) ?? throw new RunFailedException("The token endpoint did not return a usable access token."));
        }

        private void Adopt(Dictionary<string, string> credentials, (string Token, DateTimeOffset ExpiresAt) access)
        {
            _credentials = credentials;
            _model = _model.With(credentials: CredentialsObject(credentials));
            _authExpiresAt = access.ExpiresAt;
            Volatile.Write(ref _auth, Bearer(access.Token));
        }

        private static (string Token, DateTimeOffset ExpiresAt)? Valid(IReadOnlyDictionary<string, string> fields)
        {
            if (fields.TryGetValue("access_token", out var token) && token.Length > 0
                && fields.TryGetValue("access_token_expires_at", out var expires)
                && DateTimeOffset.TryParse(expires, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
                && at - TimeSpan.FromSeconds(60) > DateTimeOffset.UtcNow)
            {
                return (token, at);
            }
            return null;
        }

        private static string? CredentialField(string template)
        {
            var match = System.Text.RegularExpressions.Regex.Match(template, @"^\s*\{\{\s*credentials\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$");
            return match.Success ? match.Groups[1].Value : null;
        }

        private async Task<(string Token, TimeSpan? ExpiresIn, string? Refresh)> TokenRequestAsync(AuthSpec auth, List<KeyValuePair<string, string>> fields, Dictionary<string, string> credentials)
        {
            var tokenUrl = ParseHttpUrl((await _templates.RenderAsync(auth.TokenUrl!, _model).ConfigureAwait(false)).Trim());
            var clientId = await RenderSecretAsync(auth.ClientId!, credentials).ConfigureAwait(false);
            var clientSecret = auth.ClientSecret is null ? "" : await RenderSecretAsync(auth.ClientSecret, credentials).ConfigureAwait(false);
            var headers = new List<KeyValuePair<string, string>> { new("Accept", "application/json") };
            if (auth.ClientAuth == "basic")
            {
                var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(clientId)}:{Uri.EscapeDataString(clientSecret)}"));
                redactor.Add(basic);
                headers.Add(new("Authorization", "Basic " + basic));
            }
            else
            {
                fields.Add(new("client_id", clientId));
                if (clientSecret.Length > 0)
                {
                    fields.Add(new("client_secret", clientSecret));
                }
            }
            var form = string.Join('&', fields.Select(f => $"{Uri.EscapeDataString(f.Key)}={Uri.EscapeDataString(f.Value)}"));
            var prepared = new PreparedRequest(HttpMethod.Post, tokenUrl, headers, new RequestBody(Encoding.UTF8.GetBytes(form), "application/x-www-form-urlencoded"), SensitiveBody: true);
            // A refresh grant is never re-sent after a timeout or 5xx: the provider may have rotated the refresh token
            // already, and resending the old one would lose it. The run fails; the next run refreshes again.
            var retry = fields.Exists(f => f is { Key: "grant_type", Value: "refresh_token" }) ? BuildPipeline(null, refreshGrant: true) : BuildPipeline(null);
            var outcome = await SendAsync(prepared, retry, new LogContext("auth", null, null), _options.DefaultStepTimeout, applyAuth: false).ConfigureAwait(false);
            if (outcome.Status is < 200 or >= 300)
            {
                throw new RunFailedException($"The token endpoint returned HTTP {outcome.Status}: {redactor.RedactTruncated(outcome.Body, 300)}");
            }
            var token = outcome.Json?["access_token"]?.ToString();
            if (string.IsNullOrEmpty(token))
            {
                throw new RunFailedException("The token endpoint's response has no access_token.");
            }
            redactor.Add(token);
            var refresh = outcome.Json?["refresh_token"]?.ToString();
            redactor.Add(refresh);
            TimeSpan? expiresIn = outcome.Json?["expires_in"] is JValue { Type: JTokenType.Integer or JTokenType.Float or JTokenType.String } e
                                  && double.TryParse(e.ToString(System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                ? TimeSpan.FromSeconds(seconds)
                : null;
            return (token, expiresIn, refresh);
        }

        private async Task LoginAsync(SessionSpec session)
        {
            var prepared = await PrepareAsync(session.Login, _model, null, null).ConfigureAwait(false);
            prepared = prepared with { SensitiveBody = true };
            var outcome = await SendAsync(prepared, BuildPipeline(null), new LogContext("auth", null, null), _options.DefaultStepTimeout, applyAuth: false).ConfigureAwait(false);
            if (outcome.Status is < 200 or >= 300)
            {
                throw new RunFailedException($"Session login returned HTTP {outcome.Status}: {redactor.RedactTruncated(outcome.Body, 300)}");
            }
            var values = new JObject();
            foreach (var (name, path) in session.Extract)
            {
                var value = outcome.Select(path);
                if (value.Type == JTokenType.Null)
                {
                    throw new RunFailedException($"Session login response has nothing at {path} (for session.{name}).");
                }
                redactor.Add(value.ToString());
                values[name] = value;
            }
            _model = _model.With(session: values);
            var headers = new List<KeyValuePair<string, string>>();
            foreach (var (name, template) in session.ApplyHeaders)
            {
                headers.Add(new(name, await RenderSecretAsync(template).ConfigureAwait(false)));
            }
            var query = new List<KeyValuePair<string, string>>();
            foreach (var (name, template) in session.ApplyQuery)
            {
                query.Add(new(name, await RenderSecretAsync(template).ConfigureAwait(false)));
            }
            _auth = new AuthMaterial(headers, query, null);
        }
    }

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
    }

    private sealed record AuthMaterial(List<KeyValuePair<string, string>> Headers, List<KeyValuePair<string, string>> Query, string? Token);

    private sealed record HttpOutcome(int Status, Uri Url, string Body, ResponseBody Parsed, TimeSpan? RetryAfter, string[] Link, string? AuthToken, long Bytes)
    {
        public int Attempts { get; init; } = 1;

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

/// <summary>A run failed for a reason already worded for the user (and redacted where it matters).</summary>
public sealed class RunFailedException(string message) : Exception(message);

/// <summary>A request exceeded its step timeout (after retries).</summary>
public sealed class StepTimeoutException(string message) : Exception(message);

/// <summary>A response body exceeded <see cref="RunnerOptions.MaxResponseBytes"/>.</summary>
public sealed class ResponseTooLargeException(string message) : Exception(message);
