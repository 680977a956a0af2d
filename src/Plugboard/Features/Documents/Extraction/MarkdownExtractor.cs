using Markdig;
using Markdig.Extensions.Tables;
using Markdig.Extensions.Yaml;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// Markdown through Markdig's syntax tree: headings build the heading path, and paragraphs, list items, table rows and
/// code blocks become blocks of plain text (markup removed, link text kept). Front matter is skipped.
/// </summary>
public static class MarkdownExtractor
{
    private static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder().UseAdvancedExtensions().UseYamlFrontMatter().Build();

    public static ExtractedText Extract(string markdown)
    {
        MarkdownDocument document;
        try
        {
            document = Markdown.Parse(markdown, Pipeline);
        }
        catch (ArgumentException e)
        {
            throw new DocumentUnreadableException($"The Markdown cannot be read: {e.Message}", e); // e.g. nesting beyond Markdig's limit
        }
        var state = new State();
        Walk(document, state, BlockKind.Paragraph);
        return new ExtractedText(state.Blocks, state.FirstHeading);
    }

    private sealed class State
    {
        public List<TextBlock> Blocks { get; } = [];
        public List<(int Level, string Text)> Headings { get; } = [];
        public string? FirstHeading { get; set; }

        public IReadOnlyList<string> Path => Headings.Select(h => h.Text).ToArray();

        public void Add(BlockKind kind, string text)
        {
            if (!string.IsNullOrWhiteSpace(text))
            {
                Blocks.Add(new TextBlock(kind, text, Path));
            }
        }
    }

    private static void Walk(ContainerBlock container, State state, BlockKind kind)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        foreach (var block in container)
        {
            switch (block)
            {
                case YamlFrontMatterBlock:
                    break;
                case HeadingBlock heading:
                    var title = Extractor.Normalize(InlineText(heading.Inline));
                    state.Headings.RemoveAll(h => h.Level >= heading.Level);
                    state.Add(BlockKind.Heading, title);
                    state.Headings.Add((heading.Level, title));
                    state.FirstHeading ??= title;
                    break;
                case ParagraphBlock paragraph:
                    state.Add(kind, InlineText(paragraph.Inline).Trim());
                    break;
                case CodeBlock code:
                    state.Add(BlockKind.Code, code.Lines.ToString().TrimEnd());
                    break;
                case Table table:
                    foreach (var row in table.OfType<TableRow>())
                    {
                        state.Add(BlockKind.TableRow, string.Join(" | ", row.OfType<TableCell>().Select(CellText)));
                    }
                    break;
                case ListItemBlock item:
                    Walk(item, state, BlockKind.ListItem);
                    break;
                case ContainerBlock nested:
                    Walk(nested, state, kind);
                    break;
                case LeafBlock leaf when leaf.Inline is not null:
                    state.Add(kind, InlineText(leaf.Inline).Trim());
                    break;
            }
        }
    }

    private static string CellText(TableCell cell) =>
        Extractor.Normalize(string.Join(" ", cell.OfType<LeafBlock>().Select(l => InlineText(l.Inline))));

    private static string InlineText(ContainerInline? inline)
    {
        if (inline is null)
        {
            return "";
        }
        var text = new System.Text.StringBuilder();
        Append(inline, text);
        return text.ToString();
    }

    private static void Append(Inline inline, System.Text.StringBuilder text)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (inline)
        {
            case LiteralInline literal:
                text.Append(literal.Content.AsSpan());
                break;
            case CodeInline code:
                text.Append(code.Content);
                break;
            case LineBreakInline:
                text.Append('\n');
                break;
            case AutolinkInline link:
                text.Append(link.Url);
                break;
            case HtmlEntityInline entity:
                text.Append(entity.Transcoded.AsSpan());
                break;
            case HtmlInline:
                break;
            case ContainerInline container:
                foreach (var child in container)
                {
                    Append(child, text);
                }
                break;
        }
    }
}
