using System.Text.Json.Nodes;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

/// <summary>
/// Runs a manifest: validates inputs, executes steps in order (conditions, fan-out, pagination, extraction) over the
/// host's HTTP handler (which must not follow redirects itself; an <see cref="HttpMessageInvoker"/> over the handler
/// skips HttpClient's per-request cancellation plumbing, which the runner's own timeouts make redundant), with retries, timeouts, a response size
/// cap, credentials applied only to the manifest's own hosts, and every logged string redacted.
/// </summary>
public sealed partial class ConnectorRunner(HttpMessageInvoker http, RunnerOptions options)
{
    private static readonly object AuthPipelineKey = new();
    private static readonly object RefreshPipelineKey = new();
    private readonly TemplateEngine _templates = new(options.MaxTemplateOutputChars);

    // Pipelines are stateless; building one (options validation, telemetry) costs more than a loopback request.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, StepRetry> _pipelines = new();
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<Manifest, JToken> _outputs = new();
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<DocumentMapping, JToken> _metadata = new();

    public Task<RunResult> RunAsync(Manifest manifest, RunRequest request, IRunObserver? observer, CancellationToken ct) =>
        RunCoreAsync(manifest, request, observer, static (result, _) => result, ct);

    /// <summary>
    /// Runs the manifest's steps for a sync, then maps each stream's records to documents (templates that see
    /// <c>record</c>; every string redacted of the run's secrets). No records on failure.
    /// </summary>
    public async Task<SyncRunResult> SyncAsync(Manifest manifest, RunRequest request, IRunObserver? observer, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await RunCoreAsync(manifest, request.Sync is null ? request with { Sync = new SyncRequest(false, new Dictionary<string, string>()) } : request,
            observer, static (result, run) =>
            {
                var succeeded = result.Status == RunStatus.Succeeded;
                return new SyncRunResult(result.Status, result.Error, result.Log, succeeded ? run.Streams : [], succeeded && !run.Truncated);
            }, ct).ConfigureAwait(false);
    }

    /// <summary>Runs the steps and hands the result, with the run it came from, to <paramref name="finish"/> (which
    /// shapes what the caller gets, so the caller needs no async frame of its own).</summary>
    private async Task<T> RunCoreAsync<T>(Manifest manifest, RunRequest request, IRunObserver? observer, Func<RunResult, Run, T> finish, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(request);
        var redactor = new Redactor(request.Credentials.Values);
        var log = new List<StepLogEntry>();
        using var execution = CancellationTokenSource.CreateLinkedTokenSource(ct);
        execution.CancelAfter(options.ExecutionTimeout);
        var run = new Run(this, manifest, request, redactor, log, observer, execution.Token);
        RunResult result;
        try
        {
            var output = await run.ExecuteAsync().ConfigureAwait(false);
            result = new RunResult(RunStatus.Succeeded, output, null, Snapshot(log));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            result = new RunResult(RunStatus.Cancelled, null, "The run was cancelled.", Snapshot(log));
        }
        catch (OperationCanceledException) when (execution.IsCancellationRequested)
        {
            result = new RunResult(RunStatus.TimedOut, null, $"The run exceeded its execution timeout of {options.ExecutionTimeout.TotalSeconds:0.###} s.", Snapshot(log));
        }
        catch (StepTimeoutException ex)
        {
            result = new RunResult(RunStatus.TimedOut, null, redactor.Redact(ex), Snapshot(log));
        }
        catch (Exception ex)
        {
            result = new RunResult(RunStatus.Failed, null, redactor.Redact(ex), Snapshot(log));
        }
        finally
        {
            run.DisposeSpareSources();
        }
        return finish(result, run);
    }

    /// <summary>
    /// One piece of work outside a run's steps (a code exchange, a download) with a run's guarded HTTP, auth and
    /// redaction, cut off after <paramref name="timeout"/>. A failure becomes <paramref name="failed"/>'s result, with the
    /// message redacted and whether it came from a response over its size limit; the caller's cancellation propagates.
    /// </summary>
    private async Task<T> RunAloneAsync<T>(Manifest manifest, RunRequest request, IEnumerable<string?> secrets, TimeSpan timeout,
        Func<Run, Task<T>> work, Func<string, bool, T> failed, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(request);
        var redactor = new Redactor(secrets);
        using var execution = CancellationTokenSource.CreateLinkedTokenSource(ct);
        execution.CancelAfter(timeout);
        var run = new Run(this, manifest, request, redactor, [], null, execution.Token);
        try
        {
            return await work(run).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            return failed($"It did not finish within {timeout.TotalSeconds:0.###} s.", false);
        }
        catch (Exception ex)
        {
            return failed(redactor.Redact(ex), ex is ResponseTooLargeException);
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
    private sealed partial class Run(ConnectorRunner runner, Manifest manifest, RunRequest request, Redactor redactor, List<StepLogEntry> log, IRunObserver? observer, CancellationToken ct)
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
            await InitializeAsync().ConfigureAwait(false);
            await PrepareAuthAsync(force: false, rejected: null).ConfigureAwait(false);

            for (var i = 0; i < manifest.Steps.Count; i++)
            {
                await RunStepAsync(manifest.Steps[i]).ConfigureAwait(false);
            }
            if (request.Sync is not null)
            {
                Streams = await MapStreamsAsync().ConfigureAwait(false);
                return null;
            }
            if (manifest.Output is null)
            {
                // The steps' results are the output: masked like any output (a copy: the model itself is left as it is).
                var steps = _model.Steps.DeepClone();
                RedactSecretsIn(steps);
                return JsonInterop.ToNode(steps);
            }
            var output = await _templates.EvaluateTreeAsync(runner._outputs.GetValue(manifest, static m => JsonInterop.ToToken(m.Output)), _model).ConfigureAwait(false);
            RedactSecretsIn(output);
            return JsonInterop.ToNode(output);
        }

        /// <summary>The model (inputs and config checked, defaults applied), the base URL and the hosts that may see credentials.</summary>
        /// <param name="withInputs">False for the code exchange of a connected account, which runs no step.</param>
        private async Task InitializeAsync(bool withInputs = true)
        {
            var inputs = withInputs ? Arguments("input", manifest.Inputs, request.Inputs) : [];
            var config = Arguments("config", manifest.Config, request.Config);
            _model = new TemplateModel
            {
                Inputs = inputs,
                Config = config,
                Credentials = CredentialsObject(_credentials),
                ExecutionId = request.ExecutionId,
                Sync = request.Sync is { } sync ? SyncObject(sync) : null,
            };
            var baseUrl = (await _templates.RenderAsync(manifest.BaseUrl, _model).ConfigureAwait(false)).Trim();
            if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps))
            {
                throw new RunFailedException($"base_url '{baseUrl}' is not an absolute http(s) URL.");
            }
            _baseUrl = parsed;
            _basePath = parsed.GetLeftPart(UriPartial.Path).TrimEnd('/');
            _authHosts = new HashSet<string>(manifest.AllowedHosts.Select(h => h.Trim().ToLowerInvariant()), StringComparer.OrdinalIgnoreCase) { HostName(parsed) };
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
            switch (token)
            {
                case JValue { Type: JTokenType.String } value:
                    var text = (string)value!;
                    var redacted = redactor.RedactSecretValues(text);
                    if (!ReferenceEquals(text, redacted))
                    {
                        value.Value = redacted;
                    }
                    break;
                case JProperty property:
                    RedactSecretsIn(property.Value);
                    break;
                case JObject obj:
                    for (var child = obj.First; child is not null;)
                    {
                        var next = child.Next;
                        var property = (JProperty)child;
                        RedactSecretsIn(property.Value);
                        if (redactor.RedactSecretValues(property.Name) is var name && !ReferenceEquals(name, property.Name))
                        {
                            // A secret used as a key: the key is masked too (numbered when masked keys would collide).
                            var unique = name;
                            for (var n = 2; obj.ContainsKey(unique); n++)
                            {
                                unique = $"{name} ({n})";
                            }
                            property.Replace(new JProperty(unique, property.Value));
                        }
                        child = next;
                    }
                    break;
                case JContainer container:
                    for (var child = container.First; child is not null; child = child.Next)
                    {
                        RedactSecretsIn(child);
                    }
                    break;
            }
        }
    }
}
