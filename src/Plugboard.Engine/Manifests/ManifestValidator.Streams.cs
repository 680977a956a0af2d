using System.Text.Json.Nodes;

namespace Plugboard.Engine.Manifests;

// The manifest validator: streams (what a sync imports) and their mapping of records to documents.
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        private List<StreamSpec> Streams(JsonObject root)
        {
            var streams = new List<StreamSpec>();
            if (root["streams"] is not JsonArray nodes)
            {
                return streams;
            }
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            // Mapping templates run after every step, and what they produce is readable by every member: no secrets.
            var scope = new StepScope(int.MaxValue, true) { SecretsAllowed = false };
            for (var i = 0; i < nodes.Count; i++)
            {
                var ptr = $"/streams/{i}";
                if (Obj(nodes[i]) is not { } obj)
                {
                    continue;
                }
                var name = Str(obj, "name") ?? "";
                if (name.Length > 0 && !names.TryAdd(name, i))
                {
                    Error($"{ptr}/name", $"Duplicate stream name '{name}' (first used by /streams/{names[name]}).");
                }
                var records = Str(obj, "records") ?? "";
                var reference = ForEachReference().Match(records);
                if (reference.Success)
                {
                    StepRef(reference.Groups[1].Value, reference.Groups[2].Value, $"{ptr}/records", scope);
                }
                var primaryKey = Str(obj, "primary_key") ?? "";
                Template(primaryKey, $"{ptr}/primary_key", scope);
                var when = Str(obj, "when");
                Template(when, $"{ptr}/when", scope);
                StreamCursor? cursor = null;
                if (Obj(obj["cursor"]) is { } cursorObj)
                {
                    var field = Str(cursorObj, "field") ?? "";
                    Template(field, $"{ptr}/cursor/field", scope);
                    cursor = new StreamCursor(field, Int(cursorObj, "lookback_seconds") ?? 0, cursorObj["ordered"]?.GetValueKind() == System.Text.Json.JsonValueKind.True);
                }
                var document = Obj(obj["document"]) ?? [];
                var content = Str(document, "content") ?? "";
                var title = Str(document, "title");
                var url = Str(document, "url");
                var contentType = Str(document, "content_type");
                var contentUrl = Str(document, "content_url");
                if (document.ContainsKey("content") == document.ContainsKey("content_url"))
                {
                    Error($"{ptr}/document", "A document needs either content (inline text) or content_url (a file to download), not both.");
                }
                Template(content, $"{ptr}/document/content", scope);
                Template(contentUrl, $"{ptr}/document/content_url", scope);
                Template(title, $"{ptr}/document/title", scope);
                Template(url, $"{ptr}/document/url", scope);
                Template(contentType, $"{ptr}/document/content_type", scope);
                document.TryGetPropertyValue("metadata", out var metadata);
                TemplateTree(metadata, $"{ptr}/document/metadata", scope);
                if (!reference.Success)
                {
                    continue;
                }
                streams.Add(new StreamSpec(name, reference.Groups[1].Value, reference.Groups[2].Value, primaryKey,
                    new DocumentMapping(content) { ContentUrl = contentUrl, Title = title, Url = url, ContentType = contentType, Metadata = metadata?.DeepClone() })
                {
                    Cursor = cursor,
                    When = when,
                });
            }
            return streams;
        }
    }
}
