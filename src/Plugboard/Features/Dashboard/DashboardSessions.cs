using System.Buffers.Text;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Plugboard.Data;
using Plugboard.Hosting;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Dashboard;

/// <summary>
/// The dashboard's session cookie: an opaque random token (only its SHA-256 is stored) that acts as the API key it was
/// started with. Every state-changing request it authenticates — a dashboard form or an API call from the dashboard's
/// script — must carry the session's CSRF token, which is derived from the cookie's secret and so cannot be known to
/// another site.
/// </summary>
public static class DashboardSessions
{
    public const string CookieName = "pb_session";
    public const string CsrfHeader = "X-CSRF-Token";
    public const string CsrfField = "_csrf";
    private const string CsrfItem = "pb:csrf";

    public static TimeSpan Lifetime(IConfiguration configuration) =>
        TimeSpan.FromHours(Settings.Number(configuration, "PLUGBOARD_SESSION_HOURS", 12, 0.01, 24 * 90));

    public static string NewToken() => "pbs_" + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>What is stored of a session token: its SHA-256, as for API keys.</summary>
    public static byte[] Hash(string token) => Security.ApiKeys.Hash(token);

    /// <summary>The CSRF token of a session: an HMAC of a fixed label under the session's own secret.</summary>
    public static string CsrfFor(string token) => Base64Url.EncodeToString(HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), "plugboard-dashboard-csrf"u8));

    /// <summary>The current request's CSRF token (null unless a session authenticated it).</summary>
    public static string? Csrf(HttpContext http) => http.Items[CsrfItem] as string;

    public static bool IsSession(ClaimsPrincipal user) => user.Identity?.AuthenticationType == DashboardSessionAuthenticationHandler.SchemeName;

    internal static void Authenticated(HttpContext http, string token) => http.Items[CsrfItem] = CsrfFor(token);

    /// <summary>Whether cookies must be Secure: the request came over HTTPS, or PLUGBOARD_PUBLIC_URL says browsers reach
    /// Plugboard over HTTPS (TLS ended by a proxy in front).</summary>
    public static bool SecureCookies(HttpContext http) =>
        http.Request.IsHttps || http.RequestServices.GetService<Credentials.OAuthSettings>()?.PublicUrl?.Scheme == Uri.UriSchemeHttps;

    private static CookieOptions CookieOptions(HttpContext http) =>
        new() { HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = SecureCookies(http), Path = "/", IsEssential = true };

    public static void SetCookie(HttpContext http, string token, DateTimeOffset expires)
    {
        var options = CookieOptions(http);
        options.Expires = expires;
        http.Response.Cookies.Append(CookieName, token, options);
    }

    public static void ClearCookie(HttpContext http) => http.Response.Cookies.Delete(CookieName, CookieOptions(http));

    /// <summary>
    /// Refuses (403, problem `csrf`) a state-changing request authenticated by a session cookie unless it carries the
    /// session's CSRF token, in the header (scripts) or, for dashboard form posts, the form field. Requests with an
    /// API key in the Authorization header are not exposed to CSRF and are not checked.
    /// </summary>
    public static async Task RequireCsrfAsync(HttpContext http, Func<Task> next)
    {
        if (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && !HttpMethods.IsOptions(http.Request.Method) && IsSession(http.User))
        {
            var expected = Csrf(http)!;
            var presented = http.Request.Headers[CsrfHeader].ToString();
            if (presented.Length == 0 && !http.Request.Path.StartsWithSegments("/v1") && http.Request.HasFormContentType)
            {
                presented = (await http.Request.ReadFormAsync(http.RequestAborted))[CsrfField].ToString();
            }
            if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(expected)))
            {
                throw new ProblemException(403, "csrf", "CSRF token missing or wrong",
                    $"A request signed in by the dashboard's session cookie must carry the session's CSRF token (the {CsrfHeader} header or the {CsrfField} form field). Reload the page and try again.");
            }
        }
        await next();
    }
}

/// <summary>Authenticates the dashboard's session cookie (when no Authorization header is sent).</summary>
public sealed class DashboardSessionAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "dashboard-session";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Request.Cookies[DashboardSessions.CookieName] is not { Length: > 0 and <= 128 } token)
        {
            return AuthenticateResult.NoResult();
        }
        var db = Context.RequestServices.GetRequiredService<RequestDb>();
        var key = await db.AuthenticateSessionAsync(DashboardSessions.Hash(token), Request.RouteValues["workspaceId"] as string, Context.RequestAborted);
        if (key is null)
        {
            return AuthenticateResult.Fail("The dashboard session has ended: sign in again.");
        }
        DashboardSessions.Authenticated(Context, token);
        return ApiKeyAuthenticationHandler.Success(key, SchemeName);
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => ApiKeyAuthenticationHandler.WriteUnauthorized(Context);
}
