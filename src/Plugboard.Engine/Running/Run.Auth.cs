using System.Text;
using Newtonsoft.Json.Linq;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Templating;

namespace Plugboard.Engine.Running;

// One run: the auth schemes (api_key, bearer, basic, session login, OAuth2 client credentials and refresh).
public sealed partial class ConnectorRunner
{
    private sealed partial class Run
    {

        private bool MaySendCredentials(Uri url)
        {
            if (!_authHosts.Contains(HostName(url)))
            {
                return false;
            }
            // Never downgrade: credentials of an https API are not sent over plain http.
            return !(_baseUrl.Scheme == Uri.UriSchemeHttps && url.Scheme == Uri.UriSchemeHttp);
        }

        private static bool SameAuthority(Uri a, Uri b) =>
            string.Equals(HostName(a), HostName(b), StringComparison.OrdinalIgnoreCase) && a.Port == b.Port && a.Scheme == b.Scheme;

        // The punycode form, computed only when the host has non-ASCII characters (IdnHost is costly on every request).
        private static string HostName(Uri url) =>
            url.HostNameType is UriHostNameType.Dns or UriHostNameType.IPv4 && System.Text.Ascii.IsValid(url.Host) ? url.Host : url.IdnHost;

        private async ValueTask<AuthMaterial?> CurrentAuthAsync()
        {
            if (manifest.Auth.IsOAuth2 && _authExpiresAt - TimeSpan.FromSeconds(60) <= DateTimeOffset.UtcNow)
            {
                await PrepareAuthAsync(force: false, rejected: null).ConfigureAwait(false);
            }
            return Volatile.Read(ref _auth);
        }

        private async Task PrepareAuthAsync(bool force, string? rejected)
        {
            var auth = manifest.Auth;
            switch (auth.Type)
            {
                case "api_key":
                    var value = await RenderSecretAsync(auth.Value!).ConfigureAwait(false);
                    var name = await _templates.RenderAsync(auth.Name!, _model).ConfigureAwait(false);
                    _auth = auth.In == "query" ? new AuthMaterial([], [new(name, value)], null) : new AuthMaterial([new(name, value)], [], null);
                    return;
                case "bearer":
                    _auth = Bearer(await RenderSecretAsync(auth.Token!).ConfigureAwait(false));
                    return;
                case "basic":
                    var user = await RenderSecretAsync(auth.Username!).ConfigureAwait(false);
                    var password = auth.Password is null ? "" : await RenderSecretAsync(auth.Password).ConfigureAwait(false);
                    var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
                    redactor.Add(basic);
                    _auth = new AuthMaterial([new("Authorization", "Basic " + basic)], [], null);
                    return;
                case "session":
                    await LoginAsync(auth.Session!).ConfigureAwait(false);
                    return;
                case "oauth2_client_credentials":
                case "oauth2_refresh_token":
                case AuthSpec.AuthorizationCode:
                    await _authGate.Value.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        var current = Volatile.Read(ref _auth);
                        if (current is not null && (force ? current.Token != rejected : _authExpiresAt - TimeSpan.FromSeconds(60) > DateTimeOffset.UtcNow))
                        {
                            return; // another request of this run refreshed meanwhile
                        }
                        if (auth.Type == "oauth2_client_credentials")
                        {
                            await ClientCredentialsAsync(auth).ConfigureAwait(false);
                        }
                        else
                        {
                            await RefreshTokenAsync(auth, force, rejected).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        _authGate.Value.Release();
                    }
                    return;
                default:
                    _auth = null;
                    return;
            }
        }

        private static AuthMaterial Bearer(string token) => new([new("Authorization", "Bearer " + token)], [], token);

        private async Task<string> RenderSecretAsync(string template, Dictionary<string, string>? credentials = null)
        {
            var model = credentials is null ? _model : _model.With(credentials: CredentialsObject(credentials));
            var value = await _templates.RenderAsync(template, model).ConfigureAwait(false);
            redactor.Add(value);
            return value;
        }

        private async Task ClientCredentialsAsync(AuthSpec auth)
        {
            var fields = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
            if (auth.Scopes.Count > 0)
            {
                fields.Add(new("scope", string.Join(' ', auth.Scopes)));
            }
            if (auth.Audience is not null)
            {
                fields.Add(new("audience", await _templates.RenderAsync(auth.Audience, _model).ConfigureAwait(false)));
            }
            var (token, expiresIn, _) = await TokenRequestAsync(auth, fields, _credentials).ConfigureAwait(false);
            _authExpiresAt = DateTimeOffset.UtcNow + (expiresIn ?? TimeSpan.FromHours(1));
            Volatile.Write(ref _auth, Bearer(token));
        }

        private async Task RefreshTokenAsync(AuthSpec auth, bool force, string? rejected)
        {
            var connected = auth.Type == AuthSpec.AuthorizationCode;
            if (!force && Valid(_credentials, connected) is { } existing)
            {
                Adopt(_credentials, existing);
                return;
            }
            async Task<IReadOnlyDictionary<string, string>> Refresh(IReadOnlyDictionary<string, string> fresh, CancellationToken token)
            {
                var freshFields = new Dictionary<string, string>(fresh, StringComparer.Ordinal);
                if (Valid(freshFields, connected) is { } valid && valid.Token != rejected && (!force || fresh.GetValueOrDefault("access_token") != rejected))
                {
                    return fresh; // another run or process refreshed already
                }
                foreach (var value in fresh.Values)
                {
                    redactor.Add(value);
                }
                if (connected && !freshFields.ContainsKey("refresh_token"))
                {
                    throw new RunFailedException("The provider refused the access token (or it expired) and the credential holds no refresh token: connect the account again (POST …/credentials/oauth/start).");
                }
                var refreshToken = await RenderSecretAsync(auth.RefreshToken!, freshFields).ConfigureAwait(false);
                var (accessToken, expiresIn, rotated) = await TokenRequestAsync(auth,
                    [new("grant_type", "refresh_token"), new("refresh_token", refreshToken)], freshFields).ConfigureAwait(false);
                freshFields["access_token"] = accessToken;
                freshFields["access_token_expires_at"] = TemplateEngine.FormatIso(DateTimeOffset.UtcNow + (expiresIn ?? TimeSpan.FromHours(1)));
                if (!string.IsNullOrEmpty(rotated))
                {
                    freshFields[CredentialField(auth.RefreshToken!) ?? "refresh_token"] = rotated;
                }
                return freshFields;
            }
            var stored = request.CredentialStore is { } store
                ? await store.UpdateAsync(Refresh, ct).ConfigureAwait(false)
                : await Refresh(_credentials, ct).ConfigureAwait(false);
            var updated = new Dictionary<string, string>(stored, StringComparer.Ordinal);
            foreach (var value in updated.Values)
            {
                redactor.Add(value);
            }
            Adopt(updated, Valid(updated, connected) ?? throw new RunFailedException("The token endpoint did not return a usable access token."));
        }

        private void Adopt(Dictionary<string, string> credentials, (string Token, DateTimeOffset ExpiresAt) access)
        {
            _credentials = credentials;
            _model = _model.With(credentials: CredentialsObject(credentials));
            _authExpiresAt = access.ExpiresAt;
            Volatile.Write(ref _auth, Bearer(access.Token));
        }

        /// <param name="connected">A connected account (authorization code): a token stored without an expiry never expires
        /// (Notion, Slack and GitHub apps issue such tokens); it is renewed only when the provider refuses it.</param>
        private static (string Token, DateTimeOffset ExpiresAt)? Valid(IReadOnlyDictionary<string, string> fields, bool connected)
        {
            if (connected && fields.TryGetValue("access_token", out var lasting) && lasting.Length > 0 && !fields.ContainsKey("access_token_expires_at"))
            {
                return (lasting, DateTimeOffset.MaxValue);
            }
            if (fields.TryGetValue("access_token", out var token) && token.Length > 0
                && fields.TryGetValue("access_token_expires_at", out var expires)
                && DateTimeOffset.TryParse(expires, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
                && at - TimeSpan.FromSeconds(60) > DateTimeOffset.UtcNow)
            {
                return (token, at);
            }
            return null;
        }

        private static string? CredentialField(string template)
        {
            var match = System.Text.RegularExpressions.Regex.Match(template, @"^\s*\{\{\s*credentials\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$");
            return match.Success ? match.Groups[1].Value : null;
        }

        private async Task<(string Token, TimeSpan? ExpiresIn, string? Refresh)> TokenRequestAsync(AuthSpec auth, List<KeyValuePair<string, string>> fields, Dictionary<string, string> credentials)
        {
            var tokenUrl = ParseHttpUrl((await _templates.RenderAsync(auth.TokenUrl!, _model).ConfigureAwait(false)).Trim());
            var clientId = await RenderSecretAsync(auth.ClientId!, credentials).ConfigureAwait(false);
            var clientSecret = auth.ClientSecret is null ? "" : await RenderSecretAsync(auth.ClientSecret, credentials).ConfigureAwait(false);
            var headers = new List<KeyValuePair<string, string>> { new("Accept", "application/json") };
            if (auth.ClientAuth == "basic")
            {
                var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(clientId)}:{Uri.EscapeDataString(clientSecret)}"));
                redactor.Add(basic);
                headers.Add(new("Authorization", "Basic " + basic));
            }
            else
            {
                fields.Add(new("client_id", clientId));
                if (clientSecret.Length > 0)
                {
                    fields.Add(new("client_secret", clientSecret));
                }
            }
            var form = string.Join('&', fields.Select(f => $"{Uri.EscapeDataString(f.Key)}={Uri.EscapeDataString(f.Value)}"));
            var prepared = new PreparedRequest(HttpMethod.Post, tokenUrl, headers, new RequestBody(Encoding.UTF8.GetBytes(form), "application/x-www-form-urlencoded"), SensitiveBody: true);
            // A refresh grant is never re-sent after a timeout or 5xx: the provider may have rotated the refresh token
            // already, and resending the old one would lose it. The run fails; the next run refreshes again. An
            // authorization code is single use: resending it could only fail.
            var retry = fields.Exists(f => f is { Key: "grant_type", Value: "refresh_token" or "authorization_code" }) ? BuildPipeline(null, refreshGrant: true) : BuildPipeline(null);
            var outcome = await SendAsync(prepared, retry, new LogContext("auth", null, null), _options.DefaultStepTimeout, applyAuth: false).ConfigureAwait(false);
            if (outcome.Status is < 200 or >= 300)
            {
                throw new RunFailedException($"The token endpoint returned HTTP {outcome.Status}: {redactor.RedactTruncated(outcome.Body, 300)}");
            }
            var token = outcome.Json?["access_token"]?.ToString();
            if (string.IsNullOrEmpty(token))
            {
                throw new RunFailedException("The token endpoint's response has no access_token.");
            }
            redactor.Add(token);
            var refresh = outcome.Json?["refresh_token"]?.ToString();
            redactor.Add(refresh);
            TimeSpan? expiresIn = outcome.Json?["expires_in"] is JValue { Type: JTokenType.Integer or JTokenType.Float or JTokenType.String } e
                                  && double.TryParse(e.ToString(System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                ? TimeSpan.FromSeconds(seconds)
                : null;
            return (token, expiresIn, refresh);
        }

        private async Task LoginAsync(SessionSpec session)
        {
            var prepared = await PrepareAsync(session.Login, _model, null, null).ConfigureAwait(false);
            prepared = prepared with { SensitiveBody = true };
            var outcome = await SendAsync(prepared, BuildPipeline(null), new LogContext("auth", null, null), _options.DefaultStepTimeout, applyAuth: false).ConfigureAwait(false);
            if (outcome.Status is < 200 or >= 300)
            {
                throw new RunFailedException($"Session login returned HTTP {outcome.Status}: {redactor.RedactTruncated(outcome.Body, 300)}");
            }
            var values = new JObject();
            foreach (var (name, path) in session.Extract)
            {
                var value = outcome.Select(path);
                if (value.Type == JTokenType.Null)
                {
                    throw new RunFailedException($"Session login response has nothing at {path} (for session.{name}).");
                }
                redactor.Add(value.ToString());
                values[name] = value;
            }
            _model = _model.With(session: values);
            var headers = new List<KeyValuePair<string, string>>();
            foreach (var (name, template) in session.ApplyHeaders)
            {
                headers.Add(new(name, await RenderSecretAsync(template).ConfigureAwait(false)));
            }
            var query = new List<KeyValuePair<string, string>>();
            foreach (var (name, template) in session.ApplyQuery)
            {
                query.Add(new(name, await RenderSecretAsync(template).ConfigureAwait(false)));
            }
            _auth = new AuthMaterial(headers, query, null);
        }
    }
}
