using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;

namespace Plugboard.Engine.Running;

// One run of a sync: handing a stream's records to the host while its pages are still being fetched.
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {
        /// <summary>A checkpointed stream: what is mapped and not yet handed over, what was, and the greatest cursor so far.</summary>
        private sealed class Checkpointed(StreamSpec stream, string? storedCursor)
        {
            public StreamSpec Stream { get; } = stream;
            public List<SyncedRecord> Pending { get; } = [];
            public List<string> Delivered { get; } = [];
            public int Index { get; set; } = -1;
            public string? Cursor { get; set; } = storedCursor;
        }

        private Dictionary<string, Checkpointed>? _checkpointed;

        /// <summary>
        /// The streams whose records the given step's pages yield and that may be handed over page by page: the host asked
        /// for checkpoints, the step is the manifest's last (no later step can change what a mapping reads), not a
        /// for_each, and paginated with the stream's extraction as its <c>items</c>.
        /// </summary>
        private List<Checkpointed> CheckpointedBy(StepSpec step)
        {
            if (request.Sync?.Checkpoint is null || !ReferenceEquals(step, manifest.Steps[^1]) || step.ForEach is not null || step.Paginate?.Items is not { } items)
            {
                return [];
            }
            _checkpointed ??= manifest.Streams.Where(s => s.RecordsStep == step.Id && s.RecordsExtraction == items)
                .ToDictionary(s => s.Name, s => new Checkpointed(s, request.Sync.Cursors.GetValueOrDefault(s.Name)), StringComparer.Ordinal);
            return [.. _checkpointed.Values];
        }

        /// <summary>Maps one page's records of each checkpointed stream and hands them over once enough are pending.</summary>
        private async Task CheckpointPageAsync(List<Checkpointed> streams, JToken? page)
        {
            IEnumerable<JToken> records = page switch
            {
                JArray array => array,
                null or { Type: JTokenType.Null } => [],
                _ => [page],
            };
            foreach (var checkpointed in streams)
            {
                foreach (var record in records)
                {
                    ct.ThrowIfCancellationRequested();
                    checkpointed.Index++;
                    if (await SkippedAsync(checkpointed.Stream, record, checkpointed.Index).ConfigureAwait(false))
                    {
                        continue;
                    }
                    var mapped = await MapAsync(checkpointed.Stream, record, checkpointed.Index).ConfigureAwait(false);
                    checkpointed.Cursor = LaterCursor(checkpointed.Cursor, mapped.Cursor);
                    checkpointed.Pending.Add(mapped);
                }
                if (checkpointed.Pending.Count >= request.Sync!.CheckpointRecords)
                {
                    // Only an ordered stream's cursor moves with a checkpoint: its greatest value covers every record before it.
                    var cursor = checkpointed.Stream.Cursor?.Ordered == true ? checkpointed.Cursor : null;
                    await request.Sync.Checkpoint!(new StreamRecords(checkpointed.Stream.Name, [.. checkpointed.Pending], cursor), ct).ConfigureAwait(false);
                    checkpointed.Delivered.AddRange(checkpointed.Pending.Select(r => r.ExternalId));
                    checkpointed.Pending.Clear();
                }
            }
        }

        private async Task<bool> SkippedAsync(StreamSpec stream, JToken record, int index) =>
            stream.When is not null && Falsy.Contains((await _templates.RenderAsync(stream.When, _model.With(record: record, index: index)).ConfigureAwait(false)).Trim());
    }
}
