using System.Text.Json;
using System.Text.Json.Nodes;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

/// <summary>
/// Renders a manifest's webhook templates (<c>webhooks.event_type</c>, <c>event_id</c>, an execution's <c>inputs</c>)
/// over one inbound event: <c>event.payload</c> (the body, or one Graph notification), <c>event.headers</c> (lower-case
/// names), <c>event.type</c> and <c>event.id</c> once known. The same sandbox and limits as every other template.
/// </summary>
public static class WebhookTemplates
{
    private static readonly TemplateEngine Engine = new(64 * 1024);

    public static TemplateModel Model(JsonElement payload, IReadOnlyDictionary<string, string> headers, string? type = null, string? id = null)
    {
        var headerObject = new JObject();
        foreach (var (name, value) in headers)
        {
            headerObject[name.ToLowerInvariant()] = value;
        }
        var model = new JObject { ["payload"] = JsonInterop.ToToken(payload), ["headers"] = headerObject };
        if (type is not null)
        {
            model["type"] = type;
        }
        if (id is not null)
        {
            model["id"] = id;
        }
        return new TemplateModel { Event = model };
    }

    /// <summary>The template's text, trimmed; empty when it renders nothing.</summary>
    public static async ValueTask<string> RenderAsync(string template, TemplateModel model) =>
        (await Engine.RenderAsync(template, model).ConfigureAwait(false)).Trim();

    /// <summary>Inputs for an execution: each string leaf of <paramref name="inputs"/> evaluated (a single expression keeps its JSON type).</summary>
    public static async ValueTask<JsonObject> InputsAsync(JsonNode inputs, TemplateModel model)
    {
        var evaluated = await Engine.EvaluateTreeAsync(JsonInterop.Parse(inputs.ToJsonString()), model).ConfigureAwait(false);
        return JsonNode.Parse(evaluated.ToString(Formatting.None)) as JsonObject ?? [];
    }
}
