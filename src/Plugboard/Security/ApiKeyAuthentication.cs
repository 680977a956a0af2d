using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Security;

/// <summary>Authenticates <c>Authorization: Bearer pb_…</c> API keys against their stored hash.</summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "api-key";
    // The key's confinement and cap also live on RequestDb (KeyWorkspaceId, KeyRole), which is what the API reads.
    public const string KeyWorkspaceClaim = "pb:key_workspace";
    public const string KeyRoleClaim = "pb:key_role";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = BearerToken(Request);
        if (token is null)
        {
            return AuthenticateResult.NoResult();
        }
        if (!ApiKeys.LooksLikeKey(token))
        {
            return AuthenticateResult.Fail("The bearer token is not a Plugboard API key.");
        }
        var db = Context.RequestServices.GetRequiredService<RequestDb>();
        var key = await db.AuthenticateKeyAsync(ApiKeys.Hash(token), Request.RouteValues["workspaceId"] as string, Context.RequestAborted);
        if (key is null)
        {
            return AuthenticateResult.Fail("The API key is unknown, revoked or expired.");
        }
        return Success(key, SchemeName);
    }

    /// <summary>The ticket of an authenticated key (or of a dashboard session, which acts as its key).</summary>
    public static AuthenticateResult Success(AuthenticatedKey key, string scheme)
    {
        var claims = new List<Claim> { new(ClaimTypes.NameIdentifier, key.UserId.ToString()) };
        if (key.WorkspaceId is not null)
        {
            claims.Add(new Claim(KeyWorkspaceClaim, key.WorkspaceId));
        }
        if (key.KeyRole is not null)
        {
            claims.Add(new Claim(KeyRoleClaim, key.KeyRole));
        }
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, scheme)), scheme));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => WriteUnauthorized(Context);

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        WriteProblem(Context, 403, "forbidden", "Forbidden", "Your credentials do not allow this request.");

    public static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
    }

    public static Task WriteUnauthorized(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return WriteProblem(context, 401, "unauthorized", "Unauthorized",
            "Send a valid API key as 'Authorization: Bearer pb_…'. Create one with `plugboard keys create` or POST /v1/workspaces/{id}/api-keys.");
    }

    private static async Task WriteProblem(HttpContext context, int status, string slug, string title, string detail)
    {
        context.Response.StatusCode = status;
        var service = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await service.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Type = Problems.TypePrefix + slug, Title = title, Detail = detail },
        });
    }
}
