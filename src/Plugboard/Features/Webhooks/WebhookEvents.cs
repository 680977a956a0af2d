using System.Security.Cryptography;
using System.Text.Json;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Engine.Templating;

namespace Plugboard.Features.Webhooks;

/// <summary>One verified event, ready to store: its type, its id (repeats are not stored twice), the payload and
/// the headers kept for audit, as JSON text; a note when the manifest's templates failed and the defaults named it.</summary>
public sealed record IncomingEvent(string Type, string Id, string Payload, string Headers, string? Note = null);

/// <summary>Names a verified event: its type and id by the manifest's templates, else by the provider's convention.</summary>
public static class WebhookEvents
{
    public const int MaxTypeLength = 200;
    public const int MaxIdLength = 500;
    public const int MaxNoteLength = 2000;

    /// <summary>At most <paramref name="length"/> characters, never cutting a surrogate pair in two.</summary>
    public static string Cut(string text, int length) =>
        text.Length <= length ? text : text[..(char.IsHighSurrogate(text[length - 1]) ? length - 1 : length)];

    /// <param name="verifiedId">The delivery id the verifier read from a signed header (Standard Webhooks, generic HMAC; GitHub's is not signed, so not used).</param>
    public static async Task<IncomingEvent> DescribeAsync(WebhookSpec spec, JsonElement payload, byte[] payloadBytes,
        IReadOnlyDictionary<string, string> headers, string? verifiedId)
    {
        var kept = KeptHeaders(headers, spec.Hmac?.Header);
        TemplateModel? model = null;
        TemplateModel Model() => model ??= WebhookTemplates.Model(payload, kept);

        var notes = new List<string>();
        var type = spec.EventType is { } typeTemplate ? await RenderAsync(typeTemplate, Model(), "event_type", notes) : "";
        if (type.Length == 0)
        {
            type = DefaultType(spec.Verify, payload, headers) ?? "unknown";
        }
        var id = spec.EventId is { } idTemplate ? await RenderAsync(idTemplate, Model(), "event_id", notes) : "";
        if (id.Length == 0)
        {
            // GitHub's delivery id is not signed: a captured delivery resent under a new id must still be a repeat, so
            // GitHub events are named by their (signed) bytes, as a redelivery carries the same ones.
            id = (spec.Verify == "github" ? null : verifiedId) ?? DefaultId(spec.Verify, payload) ?? "";
        }
        if (id.Length is 0 or > MaxIdLength)
        {
            // No id of the provider's (or one too long to index): the content names the event, so a retried delivery of
            // the same bytes is recognised.
            id = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(id.Length == 0 ? payloadBytes : System.Text.Encoding.UTF8.GetBytes(id)));
        }
        var note = notes.Count > 0 ? string.Join(" ", notes) : null;
        return new IncomingEvent(Cut(type, MaxTypeLength), id, payload.GetRawText(), JsonSerializer.Serialize(kept), note is null ? null : Cut(note, MaxNoteLength));
    }

    /// <summary>A template that fails on an event is the manifest's fault, not the sender's: the event is still stored
    /// (named by the defaults) with a note, rather than refused and lost.</summary>
    private static async Task<string> RenderAsync(string template, TemplateModel model, string field, List<string> notes)
    {
        try
        {
            return await WebhookTemplates.RenderAsync(template, model);
        }
        catch (TemplateException e)
        {
            notes.Add($"webhooks.{field} failed on this event ({e.Message}); the provider's default was used.");
            return "";
        }
    }

    private static string? DefaultType(string scheme, JsonElement payload, IReadOnlyDictionary<string, string> headers) => scheme switch
    {
        "github" => headers.TryGetValue("x-github-event", out var name) ? name : null,
        "zoom" => String(payload, "event"),
        "slack" => String(payload, "type") == "event_callback" && payload.TryGetProperty("event", out var inner) ? String(inner, "type") : String(payload, "type"),
        "graph" => String(payload, "lifecycleEvent") ?? String(payload, "changeType"),
        _ => String(payload, "type"),
    };

    private static string? DefaultId(string scheme, JsonElement payload) => scheme switch
    {
        "slack" => String(payload, "event_id"),
        _ => null,
    };

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static readonly string[] Withheld = ["sig", "hmac", "authorization", "cookie", "token", "secret", "key", "password"];

    /// <summary>The headers kept with an event for audit and for templates: the content type, the user agent and the
    /// providers' own (x-…, webhook-…, svix-…), never signatures (the generic HMAC's header, or any name with sig or hmac
    /// in it) or anything credential-like; at most 40, 500 characters each.</summary>
    public static Dictionary<string, string> KeptHeaders(IReadOnlyDictionary<string, string> headers, string? signatureHeader = null)
    {
        var kept = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers.OrderBy(h => h.Key, StringComparer.OrdinalIgnoreCase))
        {
            var lower = name.ToLowerInvariant();
            var relevant = lower is "content-type" or "user-agent" || lower.StartsWith("x-", StringComparison.Ordinal)
                           || lower.StartsWith("webhook-", StringComparison.Ordinal) || lower.StartsWith("svix-", StringComparison.Ordinal);
            if (!relevant || Withheld.Any(w => lower.Contains(w, StringComparison.Ordinal)) || kept.Count >= 40
                || string.Equals(name, signatureHeader, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            kept[lower] = Cut(value, 500);
        }
        return kept;
    }
}
