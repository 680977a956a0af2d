using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Plugboard.Engine.Manifests;

/// <summary>A problem found in a manifest, located by JSON pointer (and by line/column when parsed from text).</summary>
public sealed record ManifestIssue(string Pointer, string Message, int? Line = null, int? Column = null);

/// <summary>
/// Finds secrets written literally into a manifest. Templates are shared and connectors are readable by every
/// workspace member, so any auth value, credential-bearing header or query parameter must come from
/// <c>{{ credentials.* }}</c>; a few well-known token formats are refused anywhere in the document.
/// </summary>
public static partial class LiteralSecretScanner
{
    private static readonly string[] SensitiveWords = ["token", "secret", "password", "passwd", "apikey", "api_key", "api-key", "auth", "signature", "cookie", "session", "private"];
    private static readonly HashSet<string> AllowedSchemes = new(StringComparer.OrdinalIgnoreCase) { "", "Bearer", "Basic", "Token", "Bot", "Digest", "OAuth" };
    private static readonly HashSet<string> NonSecretAuthFields = new(StringComparer.OrdinalIgnoreCase)
    {
        // Public identifiers and endpoints: a literal client id, user name or token URL is not a secret.
        "type", "in", "name", "header", "header_name", "query_param", "scheme", "prefix", "token_url", "authorize_url", "authorization_url", "url", "scopes", "scope",
        "client_id", "username",
        "audience", "grant_type", "method", "path", "token_path", "expires_in_path", "refresh_token_path", "client_auth", "content_type", "body_format",
    };

    public static IReadOnlyList<ManifestIssue> Scan(JsonNode? manifest)
    {
        var issues = new List<ManifestIssue>();
        Walk(manifest, "", parentKey: null, inAuth: false, issues);
        return issues;
    }

    private static void Walk(JsonNode? node, string pointer, string? parentKey, bool inAuth, List<ManifestIssue> issues)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, child) in obj)
                {
                    var childPointer = $"{pointer}/{Escape(key)}";
                    var isAuth = inAuth || key.Equals("auth", StringComparison.OrdinalIgnoreCase);
                    if (inAuth && key.Equals("extract", StringComparison.OrdinalIgnoreCase))
                    {
                        continue; // session login extractions are JSONPaths, not values
                    }
                    if (inAuth && key.Equals("login", StringComparison.OrdinalIgnoreCase))
                    {
                        // A session login request is an ordinary request: only credential-bearing headers/query must be templated.
                        Walk(child, childPointer, key, inAuth: false, issues);
                        continue;
                    }
                    if (inAuth && key.Equals("authorization_params", StringComparison.OrdinalIgnoreCase))
                    {
                        // Query parameters of the consent URL, which the browser sees: checked as any request's query.
                        Walk(child, childPointer, "query", inAuth: false, issues);
                        continue;
                    }
                    if (child is JsonValue value && value.TryGetValue<string>(out var text))
                    {
                        CheckString(text, childPointer, key, parentKey, isAuth && !key.Equals("auth", StringComparison.OrdinalIgnoreCase), issues);
                    }
                    else
                    {
                        Walk(child, childPointer, key, isAuth, issues);
                    }
                }
                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    Walk(array[i], $"{pointer}/{i}", parentKey, inAuth, issues);
                }
                break;
            case JsonValue value when value.TryGetValue<string>(out var text):
                CheckString(text, pointer, parentKey ?? "", null, inAuth, issues);
                break;
        }
    }

    private static void CheckString(string text, string pointer, string key, string? parentKey, bool inAuth, List<ManifestIssue> issues)
    {
        if (KnownTokenFormat().IsMatch(text))
        {
            issues.Add(new ManifestIssue(pointer, "This looks like a real access token; reference it as {{ credentials.<field> }} instead."));
            return;
        }
        var holdsCredential =
            (inAuth && !NonSecretAuthFields.Contains(key))
            || (IsCarrier(parentKey) && IsSensitiveName(key));
        if (!holdsCredential || text.Length == 0)
        {
            return;
        }
        var literal = Expression().Replace(text, "").Trim();
        var referencesCredentials = CredentialReference().IsMatch(text);
        if (!referencesCredentials || !AllowedSchemes.Contains(literal))
        {
            issues.Add(new ManifestIssue(pointer,
                $"'{key}' carries a credential, so its value must come from {{{{ credentials.<field> }}}} (optionally after a scheme such as 'Bearer'), not a literal."));
        }
    }

    private static bool IsCarrier(string? parentKey) =>
        parentKey is not null && (parentKey.Equals("headers", StringComparison.OrdinalIgnoreCase) || parentKey.Equals("query", StringComparison.OrdinalIgnoreCase)
                                  || parentKey.Equals("params", StringComparison.OrdinalIgnoreCase) || parentKey.Equals("cookies", StringComparison.OrdinalIgnoreCase));

    private static bool IsSensitiveName(string name)
    {
        var lower = name.ToLowerInvariant();
        if (lower is "idempotency-key" or "x-idempotency-key")
        {
            return false; // a request's identity, not a secret: {{ execution.id }}-{{ step.id }}
        }
        return lower is "authorization" or "proxy-authorization" or "key" or "x-key" or "sig"
               || SensitiveWords.Any(w => lower.Contains(w, StringComparison.Ordinal))
               || lower.EndsWith("-key", StringComparison.Ordinal) || lower.EndsWith("_key", StringComparison.Ordinal);
    }

    private static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    [GeneratedRegex(@"\{\{.*?\}\}", RegexOptions.Singleline)]
    private static partial Regex Expression();

    [GeneratedRegex(@"\{\{\s*(credentials|session)\.[A-Za-z_][A-Za-z0-9_]*(\s*\|[^}]*)?\s*\}\}")]
    private static partial Regex CredentialReference();

    // GitHub, Slack, Stripe, AWS access key ids, Google API keys, OpenAI-style keys, and JWTs.
    [GeneratedRegex(@"(gh[pousr]_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|sk-[A-Za-z0-9_\-]{32,}|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})")]
    private static partial Regex KnownTokenFormat();
}
