using System.Text.Json.Nodes;

namespace Plugboard.Engine.Manifests;

// The manifest validator: inbound webhooks (verification, event names, what each event type triggers).
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        private WebhookSpec? Webhooks(JsonObject root, IReadOnlyDictionary<string, ParameterSpec> inputs)
        {
            if (Obj(root["webhooks"]) is not { } obj)
            {
                return null;
            }
            const string ptr = "/webhooks";
            var verify = Str(obj, "verify") ?? "";
            // Event templates render what a provider sent: they never read credentials, and run before any step.
            var scope = StepScope.None with { SecretsAllowed = false };
            var eventType = Str(obj, "event_type");
            var eventId = Str(obj, "event_id");
            Template(eventType, $"{ptr}/event_type", scope);
            Template(eventId, $"{ptr}/event_id", scope);

            HmacSpec? hmac = null;
            if (Obj(obj["hmac"]) is { } h)
            {
                if (verify != "hmac")
                {
                    Error($"{ptr}/hmac", "hmac describes a generic signature: it applies only with verify: hmac.");
                }
                var signed = Str(h, "signed") ?? "{body}";
                if (!signed.Contains("{body}", StringComparison.Ordinal))
                {
                    Error($"{ptr}/hmac/signed", "What is signed must contain {body}: a signature that does not cover the body proves nothing about it.");
                }
                hmac = new HmacSpec(Str(h, "header") ?? "", Str(h, "algorithm") ?? "sha256", Str(h, "encoding") ?? "hex", Str(h, "prefix") ?? "", signed,
                    Str(h, "timestamp_header"), Str(h, "id_header"));
                // Each header the check reads must be covered by the signature, or a captured request could be resent with
                // a fresh timestamp or a new id.
                if (signed.Contains("{timestamp}", StringComparison.Ordinal) != (hmac.TimestampHeader is not null))
                {
                    Error($"{ptr}/hmac/signed", hmac.TimestampHeader is null
                        ? "{timestamp} is signed, so name the header it comes from in timestamp_header."
                        : "timestamp_header is checked against replays only if it is signed: put {timestamp} in signed.");
                }
                if (signed.Contains("{id}", StringComparison.Ordinal) != (hmac.IdHeader is not null))
                {
                    Error($"{ptr}/hmac/signed", hmac.IdHeader is null
                        ? "{id} is signed, so name the header it comes from in id_header."
                        : "id_header names repeated events only if it is signed: put {id} in signed.");
                }
            }
            else if (verify == "hmac")
            {
                Error($"{ptr}/hmac", "verify: hmac needs hmac: { header: ... } saying where the signature is and how it is made.");
            }

            var events = new Dictionary<string, WebhookAction>(StringComparer.Ordinal);
            if (Obj(obj["events"]) is { } map)
            {
                foreach (var (type, node) in map)
                {
                    var entryPtr = $"{ptr}/events/{Escape(type)}";
                    if (Obj(node) is not { } entry)
                    {
                        continue;
                    }
                    var action = Str(entry, "action") ?? "";
                    if (type.Length is 0 or > 200)
                    {
                        Error(entryPtr, "An event type is 1 to 200 characters.");
                    }
                    var fullRefresh = Bool(entry, "full_refresh") ?? false;
                    if (entry.ContainsKey("full_refresh") && action != "sync")
                    {
                        Error($"{entryPtr}/full_refresh", "full_refresh applies only to action: sync.");
                    }
                    entry.TryGetPropertyValue("inputs", out var inputsNode);
                    if (inputsNode is not null && action != "execution")
                    {
                        Error($"{entryPtr}/inputs", "inputs apply only to action: execution.");
                    }
                    if (inputsNode is JsonObject given)
                    {
                        TemplateTree(given, $"{entryPtr}/inputs", scope);
                        foreach (var (name, _) in given)
                        {
                            if (!inputs.ContainsKey(name))
                            {
                                Error($"{entryPtr}/inputs/{Escape(name)}", $"'{name}' is not a declared input" +
                                    (inputs.Count > 0 ? $" (inputs are: {string.Join(", ", inputs.Keys)})." : ": declare it under inputs."));
                            }
                        }
                    }
                    if (action == "sync" && root["streams"] is not JsonArray { Count: > 0 })
                    {
                        Error($"{entryPtr}/action", "action: sync needs streams: this manifest declares none, so a sync would import nothing.");
                    }
                    events[type] = new WebhookAction(action, fullRefresh, inputsNode?.DeepClone());
                }
            }
            var spec = new WebhookSpec(verify) { Hmac = hmac, EventType = eventType, EventId = eventId, Events = events };
            return Str(obj, "secret") is { } secret ? spec with { Secret = secret } : spec;
        }
    }
}
