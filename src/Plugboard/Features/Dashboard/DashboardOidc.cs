using System.Buffers.Text;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using Plugboard.Data;
using Plugboard.Features.Credentials;
using Plugboard.Hosting;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Dashboard;

/// <summary>
/// Dashboard single sign-on: PLUGBOARD_OIDC_AUTHORITY (the issuer, read through its discovery document) and
/// PLUGBOARD_OIDC_CLIENT_ID (with PLUGBOARD_OIDC_CLIENT_SECRET for a confidential client) turn it on.
/// </summary>
public sealed record OidcSignInSettings(string Authority, string ClientId, string? ClientSecret, string DisplayName, bool RequireHttps)
{
    public const string StartPath = "/sign-in/oidc";
    public const string CallbackPath = "/sign-in/oidc/callback";

    public static OidcSignInSettings? FromConfiguration(IConfiguration configuration)
    {
        var clientId = configuration["PLUGBOARD_OIDC_CLIENT_ID"]?.Trim();
        if (string.IsNullOrEmpty(clientId))
        {
            return null;
        }
        var authority = configuration["PLUGBOARD_OIDC_AUTHORITY"]?.Trim();
        if (string.IsNullOrEmpty(authority) || !Uri.TryCreate(authority, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            throw new InvalidSettingException("PLUGBOARD_OIDC_CLIENT_ID turns on single sign-on for the dashboard, which needs PLUGBOARD_OIDC_AUTHORITY: the issuer's https URL.");
        }
        if (uri.Scheme != Uri.UriSchemeHttps && !uri.IsLoopback)
        {
            throw new InvalidSettingException($"PLUGBOARD_OIDC_AUTHORITY must be an https URL (http only on a loopback address); it is '{authority}'.");
        }
        var secret = configuration["PLUGBOARD_OIDC_CLIENT_SECRET"];
        var name = configuration["PLUGBOARD_OIDC_NAME"]?.Trim();
        return new OidcSignInSettings(authority.TrimEnd('/'), clientId, string.IsNullOrEmpty(secret) ? null : secret,
            string.IsNullOrEmpty(name) ? "single sign-on" : name[..Math.Min(name.Length, 60)], !uri.IsLoopback);
    }
}

/// <summary>
/// The authorization-code flow with PKCE (S256), a state and a nonce. What the callback needs — state, nonce, code
/// verifier, where to go next — travels in a short-lived HttpOnly cookie encrypted with the key ring, so any API
/// process can finish a sign-in another started, and only the browser that started it can: the state in the URL must
/// match the cookie's. The ID token is checked (signature from the issuer's keys, issuer, audience = client id, lifetime,
/// nonce) and its verified email picks the Plugboard user, as OIDC bearer tokens do; the session that starts acts as
/// that user.
/// </summary>
public static class DashboardOidc
{
    public const string HttpClientName = "oidc";
    private const string CookieName = "pb_oidc";
    private const string CookieAad = "plugboard:dashboard-oidc-sign-in";
    private const int MaxTokenResponseBytes = 1 << 20;

    private sealed record Attempt(string State, string Nonce, string Verifier, string? Next, DateTimeOffset ExpiresAt);

    private sealed record TokenResponse([property: JsonPropertyName("id_token")] string? IdToken);

    public static void Add(IServiceCollection services, OidcSignInSettings settings)
    {
        services.AddSingleton(settings);
        services.AddHttpClient(HttpClientName, c =>
            {
                c.Timeout = TimeSpan.FromSeconds(15);
                c.MaxResponseContentBufferSize = MaxTokenResponseBytes;
            })
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false });
        services.AddSingleton<IConfigurationManager<OpenIdConnectConfiguration>>(sp => new ConfigurationManager<OpenIdConnectConfiguration>(
            settings.Authority + "/.well-known/openid-configuration", new OpenIdConnectConfigurationRetriever(),
            new HttpDocumentRetriever(sp.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientName)) { RequireHttps = settings.RequireHttps }));
    }

    public static void Map(RouteGroupBuilder ui)
    {
        ui.MapGet(OidcSignInSettings.StartPath, Start);
        ui.MapGet(OidcSignInSettings.CallbackPath, Callback);
    }

    private static async Task<IResult> Start(HttpContext http, string? next, KeyRing keys, OAuthSettings urls, IConfigurationManager<OpenIdConnectConfiguration> discovery,
        OidcSignInSettings settings, CancellationToken ct)
    {
        var config = await DiscoveryAsync(discovery, ct);
        var attempt = new Attempt(Random(), Random(), Random(), DashboardPages.LocalPath(next), DateTimeOffset.UtcNow.Add(urls.StateLifetime));
        http.Response.Cookies.Append(CookieName, keys.Encrypt(JsonSerializer.Serialize(attempt), CookieAad), new CookieOptions
        {
            // Lax, not Strict: the identity provider sends the browser back with a top-level cross-site navigation.
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = DashboardSessions.SecureCookies(http),
            Path = OidcSignInSettings.StartPath,
            Expires = attempt.ExpiresAt,
            IsEssential = true,
        });
        var challenge = Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(attempt.Verifier)));
        var query = new Dictionary<string, string?>
        {
            ["response_type"] = "code",
            ["client_id"] = settings.ClientId,
            ["redirect_uri"] = urls.Absolute(http.Request, OidcSignInSettings.CallbackPath),
            ["scope"] = "openid email profile",
            ["state"] = attempt.State,
            ["nonce"] = attempt.Nonce,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        };
        return Results.Redirect(Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(config.AuthorizationEndpoint, query));
    }

    private static async Task<IResult> Callback(HttpContext http, RequestDb db, KeyRing keys, OAuthSettings urls, IConfiguration configuration,
        IHttpClientFactory clients, IConfigurationManager<OpenIdConnectConfiguration> discovery, OidcSignInSettings settings, CancellationToken ct)
    {
        var query = http.Request.Query;
        var cookie = http.Request.Cookies[CookieName];
        http.Response.Cookies.Delete(CookieName, new CookieOptions { Path = OidcSignInSettings.StartPath, Secure = DashboardSessions.SecureCookies(http), SameSite = SameSiteMode.Lax, HttpOnly = true });
        var attempt = Read(keys, cookie);
        if (attempt is null || attempt.ExpiresAt < DateTimeOffset.UtcNow
            || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(query["state"].ToString()), Encoding.UTF8.GetBytes(attempt.State)))
        {
            return Refused(configuration, "This sign-in was not started here, has expired or was already used. Start again.", 400);
        }
        if (query["error"].ToString() is { Length: > 0 } error)
        {
            return Refused(configuration, $"The identity provider did not sign you in ({Bounded(error)}{(query["error_description"].ToString() is { Length: > 0 } d ? ": " + Bounded(d) : "")}).", 401, attempt.Next);
        }
        if (query["code"].ToString() is not { Length: > 0 and <= 4096 } code)
        {
            return Refused(configuration, "The identity provider sent no authorization code back. Start again.", 400, attempt.Next);
        }

        var config = await DiscoveryAsync(discovery, ct);
        var idToken = await ExchangeAsync(clients.CreateClient(HttpClientName), config, settings, code, attempt.Verifier, urls.Absolute(http.Request, OidcSignInSettings.CallbackPath), ct);
        if (idToken is null)
        {
            return Refused(configuration, "The identity provider did not exchange the sign-in for an ID token. Start again, or ask your administrator to check the client's settings.", 502, attempt.Next);
        }
        var validation = await new JsonWebTokenHandler().ValidateTokenAsync(idToken, new TokenValidationParameters
        {
            ValidIssuer = config.Issuer,
            ValidAudience = settings.ClientId,
            IssuerSigningKeys = config.SigningKeys,
            ValidateIssuerSigningKey = true,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ClockSkew = TimeSpan.FromMinutes(2),
        });
        if (!validation.IsValid || validation.SecurityToken is not JsonWebToken token
            || !token.TryGetPayloadValue<string>("nonce", out var nonce) || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(nonce ?? ""), Encoding.UTF8.GetBytes(attempt.Nonce)))
        {
            return Refused(configuration, "The identity provider's ID token did not check out (signature, issuer, audience, lifetime or nonce). Start again.", 401, attempt.Next);
        }
        var email = token.TryGetPayloadValue<string>("email", out var e) ? e : null;
        var verified = token.TryGetPayloadValue<object>("email_verified", out var v) && string.Equals(v?.ToString(), "true", StringComparison.OrdinalIgnoreCase);
        if (email is not { Length: > 0 } || !verified)
        {
            return Refused(configuration, "Your identity provider did not vouch for an email address (a verified email claim is needed).", 401, attempt.Next);
        }

        var session = DashboardSessions.NewToken();
        var expires = await db.QuerySingleOrDefaultAsync<DateTime?>("SELECT start_user_dashboard_session(@email, @tokenHash, @lifetime)",
            new { email, tokenHash = DashboardSessions.Hash(session), lifetime = DashboardSessions.Lifetime(configuration) }, ct);
        if (expires is null)
        {
            return Refused(configuration, $"No Plugboard user has the email {email}: ask a workspace owner to add you.", 403, attempt.Next);
        }
        await db.CommitAsync(ct);
        DashboardSessions.SetCookie(http, session, new DateTimeOffset(DateTime.SpecifyKind(expires.Value, DateTimeKind.Utc)));
        return Results.Redirect(attempt.Next ?? "/");
    }

    private static async Task<OpenIdConnectConfiguration> DiscoveryAsync(IConfigurationManager<OpenIdConnectConfiguration> discovery, CancellationToken ct)
    {
        try
        {
            return await discovery.GetConfigurationAsync(ct);
        }
        catch (InvalidOperationException)
        {
            throw new ProblemException(503, "unavailable", "Identity provider unreachable",
                "The identity provider's discovery document could not be read. Try again shortly, or sign in with an API key.");
        }
    }

    /// <summary>The code for tokens at the token endpoint; the client secret (if any) goes only there, by HTTP Basic
    /// unless the provider supports only client_secret_post. Null when the provider refuses or answers no ID token.</summary>
    private static async Task<string?> ExchangeAsync(HttpClient client, OpenIdConnectConfiguration config, OidcSignInSettings settings, string code, string verifier,
        string redirectUri, CancellationToken ct)
    {
        if (!Uri.TryCreate(config.TokenEndpoint, UriKind.Absolute, out var endpoint) || (settings.RequireHttps && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            return null;
        }
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = redirectUri,
            ["client_id"] = settings.ClientId,
            ["code_verifier"] = verifier,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint);
        if (settings.ClientSecret is { } secret)
        {
            var methods = config.TokenEndpointAuthMethodsSupported;
            if (methods.Count > 0 && !methods.Contains("client_secret_basic") && methods.Contains("client_secret_post"))
            {
                form["client_secret"] = secret;
            }
            else
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                    Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(settings.ClientId)}:{Uri.EscapeDataString(secret)}")));
            }
        }
        request.Content = new FormUrlEncodedContent(form);
        try
        {
            // Buffered, within the client's MaxResponseContentBufferSize: a larger answer fails the read.
            using var response = await client.SendAsync(request, ct);
            return response.IsSuccessStatusCode ? JsonSerializer.Deserialize<TokenResponse>(await response.Content.ReadAsByteArrayAsync(ct))?.IdToken : null;
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    private static Attempt? Read(KeyRing keys, string? cookie)
    {
        if (cookie is not { Length: > 0 and <= 4096 })
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<Attempt>(keys.Decrypt(cookie, CookieAad));
        }
        catch (Exception e) when (e is SecretDecryptionException or JsonException or FormatException or CryptographicException)
        {
            return null;
        }
    }

    private static IResult Refused(IConfiguration configuration, string error, int status, string? next = null) =>
        DashboardPages.SignInPage(configuration, error, next, status);

    private static string Bounded(string text) => text.Length <= 200 ? text : text[..200] + "…";

    private static string Random() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}
