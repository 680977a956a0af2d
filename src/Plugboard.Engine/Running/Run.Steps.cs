using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

// One run: steps, for-each fan-out, pagination, extraction and the step outcome rules.
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {

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
                result = await RunForEachAsync(step, step.ForEach, pipeline).ConfigureAwait(false);
            }
            else if (step.Paginate is null)
            {
                // Awaited here rather than through RunInstanceAsync: one async frame per request fewer.
                result = ExtractAndRelease(step, await SendStepAsync(step, pipeline, _model.With(stepId: step.Id), null, null, null, null).ConfigureAwait(false));
            }
            else
            {
                result = await RunInstanceAsync(step, pipeline, _model.With(stepId: step.Id), null).ConfigureAwait(false);
            }
            _model.Steps[step.Id] = result;
        }

        /// <summary>A for_each step: one instance per item, up to its concurrency; each extracted name becomes a list.
        /// (A method of its own, so only for_each steps allocate the closure the parallel loop needs.)</summary>
        private async Task<JObject> RunForEachAsync(StepSpec step, string forEach, StepRetry pipeline)
        {
            var path = forEach.Split('.');
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
            JObject result = [];
            foreach (var name in step.Extract.Keys)
            {
                result[name] = new JArray(results.Select(r => r[name] ?? JValue.CreateNull()));
            }
            return result;
        }

        private async Task<JObject> RunInstanceAsync(StepSpec step, StepRetry pipeline, TemplateModel model, int? item) =>
            step.Paginate is { } paginate
                ? await RunPagesAsync(step, paginate, pipeline, model, item).ConfigureAwait(false)
                : ExtractAndRelease(step, await SendStepAsync(step, pipeline, model, null, null, item, null).ConfigureAwait(false));

        private async Task<JObject> RunPagesAsync(StepSpec step, PaginateSpec paginate, StepRetry pipeline, TemplateModel model, int? item)
        {
            var maxPages = Math.Min(paginate.MaxPages ?? _options.MaxPages, _options.MaxPages);
            var limit = paginate.Limit ?? paginate.Size;
            var accumulated = new JArray();
            JObject? first = null;
            Dictionary<string, JArray>? more = null;
            string? cursor = null;
            Uri? nextUrl = null;
            for (var i = 0; i < maxPages; i++)
            {
                var number = paginate.Type == "page" ? paginate.Start + i : i + 1;
                var offset = i * (limit ?? 0);
                var page = new JObject { ["number"] = number, ["offset"] = offset, ["limit"] = limit, ["cursor"] = cursor is null ? JValue.CreateNull() : cursor };
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
                    case "cursor" when cursor is not null && paginate.CursorParam is not null:
                        extra.Add(new(paginate.CursorParam!, cursor));
                        break;
                }
                var outcome = await SendStepAsync(step, pipeline, model.With(page: page), extra, nextUrl, item, i + 1).ConfigureAwait(false);
                var extracted = Extract(step, outcome);
                first ??= extracted;
                var items = paginate.Items is null ? null : extracted[paginate.Items];
                foreach (var name in paginate.Accumulate)
                {
                    Concatenate(more ??= paginate.Accumulate.ToDictionary(n => n, _ => new JArray(), StringComparer.Ordinal), name, extracted[name]);
                }
                if (item is null && CheckpointedBy(step) is { Count: > 0 } checkpointed)
                {
                    await CheckpointPageAsync(checkpointed, items).ConfigureAwait(false);
                }
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
                    return Finish(first, paginate, accumulated, more);
                }
                switch (paginate.Type)
                {
                    case "cursor":
                        var next = outcome.Select(paginate.CursorPath!);
                        var nextCursor = next is null or { Type: JTokenType.Null } ? null : next.ToString();
                        if (string.IsNullOrEmpty(nextCursor) || nextCursor == cursor)
                        {
                            return Finish(first, paginate, accumulated, more);
                        }
                        cursor = nextCursor;
                        break;
                    case "link":
                        nextUrl = NextLink(outcome);
                        if (nextUrl is null)
                        {
                            return Finish(first, paginate, accumulated, more);
                        }
                        break;
                    case "next_url":
                        var value = outcome.Select(paginate.NextUrlPath!);
                        var text = value is null or { Type: JTokenType.Null } ? null : value.ToString();
                        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(outcome.Url, text, out var resolved) || resolved == outcome.Url)
                        {
                            return Finish(first, paginate, accumulated, more);
                        }
                        nextUrl = resolved;
                        break;
                }
            }
            // Stopped by the page limit, not by the API: there may be more, so a sync must not take what is missing as deleted.
            Truncated = true;
            return Finish(first ?? [], paginate, accumulated, more);
        }

        private static JObject Finish(JObject first, PaginateSpec paginate, JArray accumulated, Dictionary<string, JArray>? more)
        {
            if (paginate.Items is not null)
            {
                first[paginate.Items] = accumulated;
            }
            foreach (var (name, values) in more ?? [])
            {
                first[name] = values;
            }
            return first;
        }

        private static void Concatenate(Dictionary<string, JArray> lists, string name, JToken? values)
        {
            switch (values)
            {
                case JArray array:
                    foreach (var element in array)
                    {
                        lists[name].Add(element);
                    }
                    break;
                case null or { Type: JTokenType.Null }:
                    break;
                default:
                    lists[name].Add(values);
                    break;
            }
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
            if (outcome.Status == 401 && outcome.AuthToken is not null && manifest.Auth.IsOAuth2)
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
    }
}
