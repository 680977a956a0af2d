using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Plugboard.Hosting;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Optional OIDC: a second Plugboard server trusts a local identity provider (discovery + JWKS on 127.0.0.1).</summary>
[Collection(ServerCollection.Name)]
public sealed class OidcTests(PlugboardServer server)
{
    private static async Task<(WebApplication App, string Url)> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        return (app, app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    [Fact]
    public async Task Tokens_from_the_configured_issuer_sign_in_users_by_verified_email()
    {
        using var rsa = RSA.Create(2048);
        var signingKey = new RsaSecurityKey(rsa) { KeyId = "test-key" };
        string? issuer = null;
        await using var idp = await Stub.StartAsync(app =>
        {
            app.MapGet("/.well-known/openid-configuration", () => Results.Json(new { issuer, jwks_uri = issuer + "/jwks" }));
            app.MapGet("/jwks", () => Results.Json(new { keys = new[] { JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(rsa.ExportParameters(false)) { KeyId = "test-key" }) } }));
        });
        var idpUrl = issuer = idp.Url;

        var plugboard = PlugboardApp.Build([], new PlugboardHostOptions(server.TestHome, "http://127.0.0.1:0", TextWriter.Null, CreateKeyRing: false, Mode: HostMode.Api), new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = server.Settings.OwnerConnectionString,
            ["PLUGBOARD_DB_ROLE_PASSWORD"] = server.Settings.RolePassword,
            ["PLUGBOARD_KEYS"] = server.Keys.ToJson(),
            ["PLUGBOARD_OIDC_AUTHORITY"] = idpUrl,
            ["PLUGBOARD_OIDC_AUDIENCE"] = "plugboard",
        });
        var (app, url) = await StartAsync(plugboard);
        await using var appDispose = app;

        var user = await server.NewUserAsync();
        string Token(string email, bool? verified = true, SecurityKey? key = null, DateTime? expires = null, string audience = "plugboard")
        {
            var claims = new Dictionary<string, object> { ["email"] = email };
            if (verified is not null)
            {
                claims["email_verified"] = verified.Value;
            }
            return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = idpUrl,
                Audience = audience,
                Claims = claims,
                Subject = new ClaimsIdentity([new Claim("sub", Guid.NewGuid().ToString())]),
                NotBefore = (expires ?? DateTime.UtcNow.AddMinutes(5)).AddMinutes(-10),
                Expires = expires ?? DateTime.UtcNow.AddMinutes(5),
                SigningCredentials = new SigningCredentials(key ?? signingKey, SecurityAlgorithms.RsaSha256),
            });
        }
        async Task<HttpResponseMessage> MeAsync(string bearer)
        {
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            return await http.GetAsync("/v1/me");
        }

        var me = await (await MeAsync(Token(user.Email))).AssertStatusAsync(200);
        Assert.Equal(user.UserId.ToString(), me.GetProperty("user_id").GetString());
        await (await MeAsync(Token("nobody@example.test"))).AssertProblemAsync(401, "unauthorized");
        await (await MeAsync(Token(user.Email, verified: null))).AssertProblemAsync(401);
        await (await MeAsync(Token(user.Email, verified: false))).AssertProblemAsync(401);
        await (await MeAsync(Token(user.Email, expires: DateTime.UtcNow.AddMinutes(-10)))).AssertProblemAsync(401);
        await (await MeAsync(Token(user.Email, audience: "someone-else"))).AssertProblemAsync(401);
        using var otherRsa = RSA.Create(2048);
        await (await MeAsync(Token(user.Email, key: new RsaSecurityKey(otherRsa) { KeyId = "test-key" }))).AssertProblemAsync(401);
        // API keys keep working next to OIDC.
        await (await MeAsync(user.Key)).AssertStatusAsync(200);
    }
}
