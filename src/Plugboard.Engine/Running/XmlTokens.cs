using System.Text;
using System.Xml;
using Newtonsoft.Json.Linq;

namespace Plugboard.Engine.Running;

/// <summary>
/// An XML response (RSS, Atom, any XML API) as the same tokens JSON gives, so one path language reads both:
/// <c>{"rss": {"@version": "2.0", "channel": {"title": "…", "item": [{…}, {…}]}}}</c>. An element with only text is
/// its text; otherwise an object of its attributes (<c>@name</c>), child elements by qualified name (<c>dc:creator</c>)
/// and any text beside them (<c>#text</c>). A child name that occurs more than once is an array; once, the value itself.
/// DTDs are refused (no entity expansion, no external resources); deeper than 64 levels or more than 100,000 elements
/// is not read as XML.
/// </summary>
internal static class XmlTokens
{
    private const int MaxDepth = 64;

    /// <summary>Tokens cost far more than the bytes they come from (an empty element is an object, a value and a slot):
    /// a body with more elements than this stays text, so a hostile feed cannot turn 10 MB into gigabytes.</summary>
    private const int MaxElements = 100_000;

    private static readonly XmlReaderSettings Settings = new()
    {
        DtdProcessing = DtdProcessing.Prohibit,
        XmlResolver = null,
        MaxCharactersFromEntities = 0,
        IgnoreComments = true,
        IgnoreProcessingInstructions = true,
        IgnoreWhitespace = true,
    };

    private sealed class Element(string name)
    {
        public string Name { get; } = name;
        public JObject Members { get; } = [];
        public StringBuilder? Text { get; set; }
    }

    /// <summary>The tokens of <paramref name="text"/>, or null when it is not well-formed XML this reader takes.</summary>
    public static JObject? TryRead(string text)
    {
        try
        {
            using var reader = XmlReader.Create(new StringReader(text), Settings);
            var open = new Stack<Element>();
            JObject? root = null;
            var elements = 0;
            while (reader.Read())
            {
                switch (reader.NodeType)
                {
                    case XmlNodeType.Element:
                        if (++elements > MaxElements)
                        {
                            return null;
                        }
                        var element = new Element(reader.Name);
                        if (reader.MoveToFirstAttribute())
                        {
                            do
                            {
                                if (reader.Prefix != "xmlns" && reader.Name != "xmlns")
                                {
                                    element.Members["@" + reader.Name] = reader.Value;
                                }
                            }
                            while (reader.MoveToNextAttribute());
                            reader.MoveToElement();
                        }
                        if (reader.IsEmptyElement)
                        {
                            root = Close(element, open, root);
                        }
                        else if (open.Count >= MaxDepth)
                        {
                            return null;
                        }
                        else
                        {
                            open.Push(element);
                        }
                        break;
                    case XmlNodeType.Text or XmlNodeType.CDATA or XmlNodeType.SignificantWhitespace when open.Count > 0:
                        var top = open.Peek();
                        (top.Text ??= new StringBuilder()).Append(reader.Value);
                        break;
                    case XmlNodeType.EndElement:
                        root = Close(open.Pop(), open, root);
                        break;
                }
            }
            return root;
        }
        catch (XmlException)
        {
            return null;
        }
    }

    private static JObject? Close(Element element, Stack<Element> open, JObject? root)
    {
        var text = element.Text?.ToString();
        JToken value;
        if (element.Members.Count == 0)
        {
            value = new JValue(text?.Trim() ?? "");
        }
        else
        {
            if (!string.IsNullOrWhiteSpace(text))
            {
                element.Members["#text"] = text.Trim();
            }
            value = element.Members;
        }
        if (open.Count == 0)
        {
            return new JObject { [element.Name] = value };
        }
        var parent = open.Peek().Members;
        switch (parent[element.Name])
        {
            case null:
                parent[element.Name] = value;
                break;
            case JArray list:
                list.Add(value);
                break;
            case var single:
                parent[element.Name] = new JArray(single, value);
                break;
        }
        return root;
    }
}
