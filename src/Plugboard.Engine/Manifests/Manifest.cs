using System.Text.Json.Nodes;

namespace Plugboard.Engine.Manifests;

/// <summary>A validated connector manifest (<c>version: 1</c>). Templated strings are kept as written.</summary>
public sealed record Manifest(
    int Version,
    string BaseUrl,
    IReadOnlyList<string> AllowedHosts,
    AuthSpec Auth,
    IReadOnlyDictionary<string, ParameterSpec> Inputs,
    IReadOnlyDictionary<string, ParameterSpec> Config,
    IReadOnlyList<StepSpec> Steps,
    JsonNode? Output)
{
    /// <summary>What a sync imports (none: the connector cannot sync).</summary>
    public IReadOnlyList<StreamSpec> Streams { get; init; } = [];

    /// <summary>How inbound webhooks are verified and what their events trigger (none: the connector takes no webhooks).</summary>
    public WebhookSpec? Webhooks { get; init; }
}

/// <summary>A connector's inbound webhooks. Templates (<see cref="EventType"/>, <see cref="EventId"/>, inputs) see <c>event</c>.</summary>
public sealed record WebhookSpec(string Verify)
{
    /// <summary><c>generated</c> (Plugboard makes the signing secret) or <c>provided</c> (the provider issues it).</summary>
    public string Secret { get; init; } = DefaultSecret(Verify);
    public HmacSpec? Hmac { get; init; }
    public string? EventType { get; init; }
    public string? EventId { get; init; }

    /// <summary>Event type, or <c>*</c> for any other, to what it triggers.</summary>
    public IReadOnlyDictionary<string, WebhookAction> Events { get; init; } = new Dictionary<string, WebhookAction>();

    public static string DefaultSecret(string verify) => verify is "github" or "zoom" or "slack" ? "provided" : "generated";

    /// <summary>What an event of this type triggers: its own entry, else <c>*</c>, else nothing.</summary>
    public WebhookAction? ActionFor(string eventType) =>
        Events.TryGetValue(eventType, out var action) || Events.TryGetValue("*", out action) ? action : null;
}

/// <param name="Signed">What is signed: <c>{body}</c>, <c>{timestamp}</c> and <c>{id}</c> stand for the raw body and the headers' values.</param>
public sealed record HmacSpec(string Header, string Algorithm, string Encoding, string Prefix, string Signed, string? TimestampHeader, string? IdHeader);

/// <param name="Action"><c>sync</c>, <c>execution</c> or <c>ignore</c>.</param>
public sealed record WebhookAction(string Action, bool FullRefresh = false, JsonNode? Inputs = null);

/// <summary>A stream: the records of one step extraction (<c>steps.id.name</c>), each mapped to a document by templates
/// that see <c>record</c>.</summary>
public sealed record StreamSpec(string Name, string RecordsStep, string RecordsExtraction, string PrimaryKey, DocumentMapping Document)
{
    public StreamCursor? Cursor { get; init; }

    /// <summary>Records for which this renders falsy are not imported (a full refresh then counts them as gone).</summary>
    public string? When { get; init; }
}

/// <param name="Ordered">Records arrive in ascending cursor order, so a committed batch's greatest cursor covers everything before it.</param>
public sealed record StreamCursor(string Field, int LookbackSeconds, bool Ordered = false);

/// <summary><see cref="Content"/> is inline text; with <see cref="ContentUrl"/> the document is a file downloaded by the host.</summary>
public sealed record DocumentMapping(string Content)
{
    public string? ContentUrl { get; init; }
    public string? Title { get; init; }
    public string? Url { get; init; }
    public string? ContentType { get; init; }
    public JsonNode? Metadata { get; init; }
}

public sealed record ParameterSpec(string Type, bool Required, JsonNode? Default, string? Description);

/// <summary>Auth scheme. Only the fields of <see cref="Type"/> are set.</summary>
public sealed record AuthSpec(string Type)
{
    public static AuthSpec None { get; } = new("none");

    public string? In { get; init; }
    public string? Name { get; init; }
    public string? Value { get; init; }
    public string? Token { get; init; }
    public string? Username { get; init; }
    public string? Password { get; init; }
    public string? TokenUrl { get; init; }

    /// <summary><c>oauth2_authorization_code</c>: where the user is sent to consent, and extra query parameters for it.</summary>
    public string? AuthorizationUrl { get; init; }
    public IReadOnlyDictionary<string, string> AuthorizationParams { get; init; } = new Dictionary<string, string>();
    public string? ClientId { get; init; }
    public string? ClientSecret { get; init; }
    public string? RefreshToken { get; init; }
    public IReadOnlyList<string> Scopes { get; init; } = [];
    public string? Audience { get; init; }

    /// <summary><c>body</c> (default: client id and secret in the form) or <c>basic</c>.</summary>
    public string ClientAuth { get; init; } = "body";
    public SessionSpec? Session { get; init; }

    /// <summary>A scheme whose access token expires and is renewed at the token endpoint.</summary>
    public bool IsOAuth2 => Type is "oauth2_client_credentials" or "oauth2_refresh_token" or AuthorizationCode;

    public const string AuthorizationCode = "oauth2_authorization_code";
}

public sealed record SessionSpec(
    RequestSpec Login,
    IReadOnlyDictionary<string, string> Extract,
    IReadOnlyDictionary<string, string> ApplyHeaders,
    IReadOnlyDictionary<string, string> ApplyQuery);

public sealed record StepSpec(string Id, RequestSpec Request)
{
    public string? When { get; init; }
    public string? ForEach { get; init; }
    public int? Concurrency { get; init; }
    public IReadOnlyDictionary<string, string> Extract { get; init; } = new Dictionary<string, string>();
    public PaginateSpec? Paginate { get; init; }
    public RetrySpec? Retry { get; init; }
    public int? TimeoutSeconds { get; init; }
    public string? ErrorWhen { get; init; }
    public IReadOnlyList<int>? ExpectStatus { get; init; }
}

public sealed record RequestSpec(string Method)
{
    public string? Path { get; init; }
    public string? Url { get; init; }
    public IReadOnlyDictionary<string, string> Query { get; init; } = new Dictionary<string, string>();
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();
    public BodySpec? Body { get; init; }
}

/// <summary>Exactly one of <see cref="Json"/>, <see cref="Form"/>, <see cref="Text"/>.</summary>
public sealed record BodySpec(JsonNode? Json, IReadOnlyDictionary<string, string>? Form, string? Text);

public sealed record PaginateSpec(string Type)
{
    public string LimitParam { get; init; } = "limit";
    public string OffsetParam { get; init; } = "offset";
    public int? Limit { get; init; }
    public string PageParam { get; init; } = "page";
    public int Start { get; init; } = 1;
    public string? SizeParam { get; init; }
    public int? Size { get; init; }
    public string? CursorParam { get; init; }
    public string? CursorPath { get; init; }
    public string? NextUrlPath { get; init; }
    public string? Items { get; init; }

    /// <summary>Other extractions concatenated across pages as <see cref="Items"/> is (the rest keep the first page's value).</summary>
    public IReadOnlyList<string> Accumulate { get; init; } = [];
    public bool StopWhenEmpty { get; init; } = true;
    public int? MaxPages { get; init; }
}

/// <param name="Idempotent">The step's request may be repeated safely (the author opts a POST/PUT/PATCH/DELETE into
/// retries on timeouts and 5xx); GET, HEAD, OPTIONS and requests with an Idempotency-Key header are retried anyway.</param>
public sealed record RetrySpec(int? MaxAttempts, IReadOnlyList<int>? OnStatus, bool Idempotent = false);
