using System.Text;
using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

/// <summary>What the provider's consent page is asked for: the client, where to come back, and the flow's
/// <c>state</c> and PKCE challenge (S256).</summary>
public sealed record AuthorizationRequest(string ClientId, string RedirectUri, string State, string CodeChallenge);

/// <summary>The credential fields a code exchange yields (the client's own fields, <c>access_token</c>, and
/// <c>refresh_token</c> / <c>access_token_expires_at</c> when the provider sent them), or what went wrong (redacted).</summary>
public sealed record CodeExchangeResult(IReadOnlyDictionary<string, string>? Fields, string? Error);

// The authorization-code flow of oauth2_authorization_code: the consent URL and the code exchange, through the same
// HTTP handler (SSRF guard), redaction and token request as every run.
public sealed partial class ConnectorRunner
{
    /// <summary>The provider's authorization URL for <paramref name="manifest"/> (its <c>authorization_url</c> rendered over
    /// <paramref name="config"/>), with response_type=code, the client, redirect URI, scopes, state, PKCE and the manifest's
    /// <c>authorization_params</c>.</summary>
    public async Task<Uri> AuthorizationUrlAsync(Manifest manifest, JsonObject config, AuthorizationRequest authorization)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(authorization);
        if (manifest.Auth.Type != AuthSpec.AuthorizationCode)
        {
            throw new RunFailedException($"The manifest's auth is {manifest.Auth.Type}; connecting an account needs oauth2_authorization_code.");
        }
        var model = new TemplateModel { Config = JsonInterop.ToObject(config), Credentials = new Newtonsoft.Json.Linq.JObject { ["client_id"] = authorization.ClientId } };
        var url = (await _templates.RenderAsync(manifest.Auth.AuthorizationUrl!, model).ConfigureAwait(false)).Trim();
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps))
        {
            throw new RunFailedException($"authorization_url '{url}' is not an absolute http(s) URL.");
        }
        var query = new StringBuilder(parsed.Query.TrimStart('?'));
        void Add(string name, string value) =>
            query.Append(query.Length == 0 ? "" : "&").Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
        Add("response_type", "code");
        Add("client_id", authorization.ClientId);
        Add("redirect_uri", authorization.RedirectUri);
        if (manifest.Auth.Scopes.Count > 0)
        {
            Add("scope", string.Join(' ', manifest.Auth.Scopes));
        }
        Add("state", authorization.State);
        Add("code_challenge", authorization.CodeChallenge);
        Add("code_challenge_method", "S256");
        foreach (var (name, template) in manifest.Auth.AuthorizationParams)
        {
            Add(name, await _templates.RenderAsync(template, model).ConfigureAwait(false));
        }
        return new UriBuilder(parsed) { Query = query.ToString() }.Uri;
    }

    /// <summary>Exchanges an authorization code (with its PKCE verifier) at the manifest's token endpoint.
    /// <paramref name="request"/> carries the config and the client's credential fields (client_id, client_secret).</summary>
    public Task<CodeExchangeResult> ExchangeCodeAsync(Manifest manifest, RunRequest request, string code, string codeVerifier, string redirectUri, CancellationToken ct) =>
        RunAloneAsync(manifest, request, [.. request?.Credentials.Values ?? [], code, codeVerifier], options.DefaultStepTimeout,
            async run => new CodeExchangeResult(await run.ExchangeCodeAsync(code, codeVerifier, redirectUri).ConfigureAwait(false), null),
            (error, _) => new CodeExchangeResult(null, error), ct);

    private sealed partial class Run
    {
        public async Task<IReadOnlyDictionary<string, string>> ExchangeCodeAsync(string code, string codeVerifier, string redirectUri)
        {
            if (manifest.Auth.Type != AuthSpec.AuthorizationCode)
            {
                throw new RunFailedException($"The manifest's auth is {manifest.Auth.Type}; connecting an account needs oauth2_authorization_code.");
            }
            await InitializeAsync(withInputs: false).ConfigureAwait(false);
            var (token, expiresIn, refresh) = await TokenRequestAsync(manifest.Auth,
                [new("grant_type", "authorization_code"), new("code", code), new("redirect_uri", redirectUri), new("code_verifier", codeVerifier)],
                _credentials).ConfigureAwait(false);
            var fields = new Dictionary<string, string>(_credentials, StringComparer.Ordinal) { ["access_token"] = token };
            if (expiresIn is { } lifetime)
            {
                fields["access_token_expires_at"] = TemplateEngine.FormatIso(DateTimeOffset.UtcNow + lifetime);
            }
            if (!string.IsNullOrEmpty(refresh))
            {
                fields["refresh_token"] = refresh;
            }
            return fields;
        }
    }
}
