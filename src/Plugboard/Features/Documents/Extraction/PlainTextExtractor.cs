namespace Plugboard.Features.Documents.Extraction;

/// <summary>Plain text (and CSV): paragraphs separated by blank lines, each line of a paragraph kept in it.</summary>
public static class PlainTextExtractor
{
    public static ExtractedText Extract(string text)
    {
        var blocks = new List<TextBlock>();
        var paragraph = new System.Text.StringBuilder();
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            if (line.IsWhiteSpace())
            {
                Flush();
                continue;
            }
            if (paragraph.Length > 0)
            {
                paragraph.Append('\n');
            }
            paragraph.Append(line.Trim());
        }
        Flush();
        return new ExtractedText(blocks);

        void Flush()
        {
            if (paragraph.Length > 0)
            {
                blocks.Add(new TextBlock(BlockKind.Paragraph, paragraph.ToString(), []));
                paragraph.Clear();
            }
        }
    }
}
