using System.Security.Claims;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Plugboard.Data;

namespace Plugboard.Security;

/// <summary>
/// Optional OIDC: a JWT from the configured issuer signs in the Plugboard user with the token's verified email.
/// People are added to workspaces by email, so the email is the link between the two.
/// </summary>
public static class OidcSignIn
{
    public static void Configure(JwtBearerOptions options, string authority, string? audience)
    {
        options.Authority = authority;
        options.Audience = audience;
        options.MapInboundClaims = false;
        options.RequireHttpsMetadata = !Uri.TryCreate(authority, UriKind.Absolute, out var uri) || !uri.IsLoopback;
        options.TokenValidationParameters.ValidateAudience = !string.IsNullOrEmpty(audience);
        options.Events = new JwtBearerEvents
        {
            OnTokenValidated = async context =>
            {
                var principal = context.Principal!;
                var email = principal.FindFirst("email")?.Value;
                var verified = principal.FindFirst("email_verified")?.Value;
                if (email is null || !string.Equals(verified, "true", StringComparison.OrdinalIgnoreCase))
                {
                    context.Fail("The token carries no verified email.");
                    return;
                }
                var db = context.HttpContext.RequestServices.GetRequiredService<RequestDb>();
                if (!await db.AuthenticateEmailAsync(email, context.HttpContext.RequestAborted))
                {
                    context.Fail("No Plugboard user has this email; ask a workspace owner to add you.");
                    return;
                }
                context.Principal = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, db.UserId!.Value.ToString())], JwtBearerDefaults.AuthenticationScheme));
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                await ApiKeyAuthenticationHandler.WriteUnauthorized(context.HttpContext);
            },
        };
    }
}
