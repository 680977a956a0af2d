using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace Plugboard.Features.Documents.Extraction;

/// <summary>
/// HTML through AngleSharp's HTML5 parser: scripts, styles, templates, forms and navigation (nav, header, footer,
/// aside) are dropped; headings build the heading path; paragraphs, list items, table rows, preformatted text and
/// loose text in containers become blocks. The title is the document's &lt;title&gt;, else its first heading.
/// </summary>
public static class HtmlExtractor
{
    private static readonly HashSet<string> Dropped = new(StringComparer.OrdinalIgnoreCase)
    {
        "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe", "object", "button", "select",
    };

    private static readonly HashSet<string> Leaves = new(StringComparer.OrdinalIgnoreCase)
    {
        "p", "pre", "blockquote", "dt", "dd", "figcaption", "caption", "address", "summary",
    };

    public static ExtractedText Extract(string html)
    {
        var document = new HtmlParser(new HtmlParserOptions { IsScripting = false }).ParseDocument(html);
        var state = new State();
        if (document.Body is { } body)
        {
            Walk(body, state);
        }
        var title = Extractor.Normalize(document.Title ?? "");
        return new ExtractedText(state.Blocks, title.Length > 0 ? title : state.FirstHeading);
    }

    private sealed class State
    {
        public List<TextBlock> Blocks { get; } = [];
        public List<(int Level, string Text)> Headings { get; } = [];
        public string? FirstHeading { get; set; }

        public void Add(BlockKind kind, string text)
        {
            if (text.Length > 0)
            {
                Blocks.Add(new TextBlock(kind, text, Headings.Select(h => h.Text).ToArray()));
            }
        }
    }

    private static void Walk(IElement element, State state)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack(); // deeply nested markup fails the document, not the process
        var loose = new System.Text.StringBuilder();
        foreach (var node in element.ChildNodes)
        {
            if (node is IText text)
            {
                loose.Append(text.Data);
                continue;
            }
            if (node is not IElement child || Dropped.Contains(child.LocalName))
            {
                continue;
            }
            var name = child.LocalName.ToLowerInvariant();
            if (IsInline(name))
            {
                loose.Append(name == "br" ? " " : child.TextContent);
                continue;
            }
            FlushLoose();
            if (name.Length == 2 && name[0] == 'h' && name[1] is >= '1' and <= '6')
            {
                var level = name[1] - '0';
                var heading = Extractor.Normalize(child.TextContent);
                state.Headings.RemoveAll(h => h.Level >= level);
                state.Add(BlockKind.Heading, heading);
                if (heading.Length > 0)
                {
                    state.Headings.Add((level, heading));
                    state.FirstHeading ??= heading;
                }
            }
            else if (name == "li")
            {
                state.Add(BlockKind.ListItem, Extractor.Normalize(string.Concat(child.ChildNodes
                    .Where(n => n is not IElement e || (e.LocalName is not ("ul" or "ol") && !Dropped.Contains(e.LocalName))).Select(n => n.TextContent))));
                foreach (var nested in child.Children.Where(c => c.LocalName is "ul" or "ol"))
                {
                    Walk(nested, state);
                }
            }
            else if (name == "tr")
            {
                state.Add(BlockKind.TableRow, string.Join(" | ", child.Children.Where(c => c.LocalName is "td" or "th").Select(c => Extractor.Normalize(c.TextContent))));
            }
            else if (name == "pre")
            {
                state.Add(BlockKind.Code, child.TextContent.Trim('\n', '\r'));
            }
            else if (Leaves.Contains(name))
            {
                state.Add(BlockKind.Paragraph, Extractor.Normalize(child.TextContent));
            }
            else
            {
                Walk(child, state);
            }
        }
        FlushLoose();

        void FlushLoose()
        {
            state.Add(BlockKind.Paragraph, Extractor.Normalize(loose.ToString()));
            loose.Clear();
        }
    }

    private static bool IsInline(string name) => name is "a" or "abbr" or "b" or "bdi" or "bdo" or "br" or "cite" or "code" or "data" or "dfn" or "em"
        or "i" or "kbd" or "mark" or "q" or "s" or "samp" or "small" or "span" or "strong" or "sub" or "sup" or "time" or "u" or "var" or "wbr" or "label";
}
