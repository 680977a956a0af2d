using System.Globalization;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;

namespace Plugboard.Engine.Running;

// One run of a sync: what its steps see of the sync, and each stream's records mapped to documents.
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {
        /// <summary>The mapped streams of a sync run (set once its steps succeeded).</summary>
        public IReadOnlyList<StreamRecords> Streams { get; private set; } = [];

        /// <summary>A paginated step stopped at its page limit rather than at the API's last page.</summary>
        public bool Truncated { get; private set; }

        /// <summary><c>sync.full_refresh</c>, and <c>sync.cursor.NAME</c> per stream: the stored cursor, moved back by the
        /// stream's look-back when it is a time; absent on a full refresh or before the first sync.</summary>
        private JObject SyncObject(SyncRequest sync)
        {
            var cursors = new JObject();
            foreach (var stream in manifest.Streams)
            {
                if (!sync.FullRefresh && sync.Cursors.TryGetValue(stream.Name, out var stored))
                {
                    cursors[stream.Name] = LookBack(stored, stream.Cursor?.LookbackSeconds ?? 0);
                }
            }
            return new JObject { ["full_refresh"] = sync.FullRefresh, ["cursor"] = cursors };
        }

        private static string LookBack(string cursor, int seconds) =>
            seconds > 0 && DateTimeOffset.TryParse(cursor, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
                ? Templating.TemplateEngine.FormatIso(time.AddSeconds(-seconds))
                : cursor;

        private async Task<IReadOnlyList<StreamRecords>> MapStreamsAsync()
        {
            var streams = new List<StreamRecords>(manifest.Streams.Count);
            foreach (var stream in manifest.Streams)
            {
                // A skipped step or a path that matched nothing is not "no records": a full refresh would delete them all.
                var found = _model.Steps[stream.RecordsStep]?[stream.RecordsExtraction];
                IEnumerable<JToken> records = found switch
                {
                    // A union over names that are a list in one response and a single value in another
                    // ($..['item','entry'] over RSS or Atom) matches [[records]]: that is the list of records. (A for_each
                    // step's extraction is a list per item, and each such list is one record.)
                    JArray { Count: 1 } array when array[0] is JArray inner && IsUnion(stream) => inner,
                    JArray array => array,
                    null or { Type: JTokenType.Null } => throw new RunFailedException(
                        $"Stream '{stream.Name}': steps.{stream.RecordsStep}.{stream.RecordsExtraction} holds nothing (the step was skipped, or its JSONPath matched nothing in the response); " +
                        "an empty list of records must be an empty array."),
                    _ => [found],
                };
                // A cursor never moves back: a full refresh (or one stopped at its page limit) that reaches less far keeps the stored one.
                var cursor = request.Sync!.Cursors.GetValueOrDefault(stream.Name);
                var mapped = new List<SyncedRecord>();
                if (_checkpointed?.GetValueOrDefault(stream.Name) is { } checkpointed)
                {
                    // Mapped page by page already: what was not handed to a checkpoint comes with the result.
                    streams.Add(new StreamRecords(stream.Name, checkpointed.Pending, checkpointed.Cursor) { CheckpointedIds = checkpointed.Delivered });
                    continue;
                }
                var index = -1;
                foreach (var record in records)
                {
                    ct.ThrowIfCancellationRequested();
                    index++;
                    if (await SkippedAsync(stream, record, index).ConfigureAwait(false))
                    {
                        continue;
                    }
                    var item = await MapAsync(stream, record, index).ConfigureAwait(false);
                    cursor = LaterCursor(cursor, item.Cursor);
                    mapped.Add(item);
                }
                streams.Add(new StreamRecords(stream.Name, mapped, cursor));
            }
            return streams;
        }

        private bool IsUnion(StreamSpec stream) =>
            manifest.Steps.FirstOrDefault(s => s.Id == stream.RecordsStep) is { ForEach: null } step
            && step.Paginate is null
            && step.Extract.TryGetValue(stream.RecordsExtraction, out var path) && ManifestParser.IsMultiPath(path);

        /// <param name="index">The record's position in its stream: a for_each step's extractions are lists in the same
        /// order as the items it ran over, so <c>steps.blocks.text[index]</c> is what was fetched for this record.</param>
        private async Task<SyncedRecord> MapAsync(StreamSpec stream, JToken record, int index)
        {
            var model = _model.With(record: record, index: index);
            var id = redactor.RedactSecretValues((await _templates.RenderAsync(stream.PrimaryKey, model).ConfigureAwait(false)).Trim());
            if (id.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(id) > 1024)
            {
                throw new RunFailedException($"Stream '{stream.Name}': a record's primary key ({stream.PrimaryKey}) rendered {(id.Length == 0 ? "empty" : "longer than 1024 bytes")}.");
            }
            var document = stream.Document;
            var title = document.Title is null ? "" : await RenderAsync(document.Title);
            var url = document.Url is null ? null : await RenderAsync(document.Url);
            // A file's type is what its bytes say; a content_type given for it is a declaration checked against them.
            var fallbackType = document.ContentUrl is null ? "text/plain" : "application/octet-stream";
            var contentType = document.ContentType is null ? fallbackType : await RenderAsync(document.ContentType);
            var content = document.ContentUrl is null ? await RenderAsync(document.Content) : "";
            var contentUrl = document.ContentUrl is null ? null : await RenderAsync(document.ContentUrl);
            if (document.ContentUrl is not null && !Uri.TryCreate(contentUrl, UriKind.Absolute, out _))
            {
                throw new RunFailedException($"Stream '{stream.Name}': record {id}'s content_url rendered '{contentUrl}', not an absolute URL.");
            }
            var metadata = "{}";
            if (document.Metadata is not null)
            {
                var tree = await _templates.EvaluateTreeAsync(runner._metadata.GetValue(document, static d => JsonInterop.ToToken(d.Metadata)), model).ConfigureAwait(false);
                RedactSecretsIn(tree);
                metadata = tree.ToString(Newtonsoft.Json.Formatting.None);
            }
            var cursor = stream.Cursor is null ? null : await RenderAsync(stream.Cursor.Field);
            return new SyncedRecord(id, title, string.IsNullOrWhiteSpace(url) ? null : url, string.IsNullOrWhiteSpace(contentType) ? fallbackType : contentType,
                content, metadata, string.IsNullOrEmpty(cursor) ? null : cursor)
            { ContentUrl = contentUrl };

            async Task<string> RenderAsync(string template) =>
                redactor.RedactSecretValues((await _templates.RenderAsync(template, model).ConfigureAwait(false)).Trim());
        }

        /// <summary>The later of two cursor values: as times when both are times, as numbers when both are numbers, else by text.</summary>
        internal static string? LaterCursor(string? a, string? b)
        {
            if (a is null || b is null)
            {
                return a ?? b;
            }
            if (DateTimeOffset.TryParse(a, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ta)
                && DateTimeOffset.TryParse(b, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var tb))
            {
                return tb > ta ? b : a;
            }
            if (decimal.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out var na) && decimal.TryParse(b, NumberStyles.Float, CultureInfo.InvariantCulture, out var nb))
            {
                return nb > na ? b : a;
            }
            return string.CompareOrdinal(b, a) > 0 ? b : a;
        }
    }
}
