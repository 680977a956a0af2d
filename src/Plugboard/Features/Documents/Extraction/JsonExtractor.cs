using System.Text.Json;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// JSON as searchable lines: each top-level member (or array element) is a block under its own heading, holding one
/// <c>path: value</c> line per leaf beneath it.
/// </summary>
public static class JsonExtractor
{
    public static ExtractedText Extract(Stream content)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(content, new JsonDocumentOptions { MaxDepth = 256, AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new DocumentUnreadableException($"The JSON is not valid: {e.Message}", e);
        }
        using (document)
        {
            var blocks = new List<TextBlock>();
            var root = document.RootElement;
            string? title = null;
            if (root.ValueKind == JsonValueKind.Object)
            {
                foreach (var member in root.EnumerateObject())
                {
                    if (title is null && member.Name is "title" or "name" && member.Value.ValueKind == JsonValueKind.String)
                    {
                        title = member.Value.GetString();
                    }
                    AddBlock(blocks, member.Name, member.Value);
                }
            }
            else if (root.ValueKind == JsonValueKind.Array)
            {
                var index = 0;
                foreach (var item in root.EnumerateArray())
                {
                    AddBlock(blocks, $"[{index++}]", item);
                }
            }
            else
            {
                AddBlock(blocks, "value", root);
            }
            return new ExtractedText(blocks, title);
        }
    }

    private static void AddBlock(List<TextBlock> blocks, string name, JsonElement value)
    {
        var lines = new System.Text.StringBuilder();
        Flatten(value, name, lines);
        if (lines.Length > 0)
        {
            blocks.Add(new TextBlock(BlockKind.Paragraph, lines.ToString().TrimEnd('\n'), [name]));
        }
    }

    private const int MaxPathCharacters = 200;

    private static void Flatten(JsonElement value, string path, System.Text.StringBuilder lines)
    {
        if (lines.Length > Extractor.MaxTextCharacters)
        {
            throw new DocumentUnreadableException($"The JSON holds more than {Extractor.MaxTextCharacters / 1024 / 1024} MiB of text; split it into smaller files.");
        }
        path = path.Length > MaxPathCharacters ? path[..MaxPathCharacters] + "…" : path; // long keys do not repeat on every line
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var member in value.EnumerateObject())
                {
                    Flatten(member.Value, $"{path}.{member.Name}", lines);
                }
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in value.EnumerateArray())
                {
                    Flatten(item, $"{path}[{index++}]", lines);
                }
                break;
            case JsonValueKind.String:
                if (value.GetString() is { Length: > 0 } text)
                {
                    lines.Append(path).Append(": ").Append(Extractor.Normalize(text)).Append('\n');
                }
                break;
            case JsonValueKind.Null:
                break;
            default:
                lines.Append(path).Append(": ").Append(value.GetRawText()).Append('\n');
                break;
        }
    }
}
