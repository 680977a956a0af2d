using System.Text.Json.Nodes;
using YamlDotNet.Core;

namespace Plugboard.Engine.Manifests;

// The manifest validator: the auth block of each scheme.
public static partial class ManifestParser
{
    private sealed partial class Validator
    {
        private AuthSpec Auth(JsonObject root)
        {
            if (Obj(root["auth"]) is not { } obj || Str(obj, "type") is not { } type)
            {
                return AuthSpec.None;
            }
            var scope = StepScope.None;
            string? T(string key)
            {
                var value = Str(obj, key);
                Template(value, $"/auth/{key}", scope);
                return value;
            }
            var spec = new AuthSpec(type);
            switch (type)
            {
                case "api_key":
                    return spec with { In = Str(obj, "in") ?? "header", Name = T("name"), Value = T("value") };
                case "bearer":
                    return spec with { Token = T("token") };
                case "basic":
                    return spec with { Username = T("username"), Password = T("password") };
                case "oauth2_client_credentials":
                case "oauth2_refresh_token":
                    return spec with
                    {
                        TokenUrl = T("token_url"),
                        ClientId = T("client_id"),
                        ClientSecret = T("client_secret"),
                        RefreshToken = type == "oauth2_refresh_token" ? T("refresh_token") : null,
                        Scopes = StrList(obj, "scopes"),
                        Audience = type == "oauth2_client_credentials" ? T("audience") : null,
                        ClientAuth = Str(obj, "client_auth") ?? "body",
                    };
                case AuthSpec.AuthorizationCode:
                    // Connected through the platform's authorization-code flow: the tokens it stored are credential fields.
                    return spec with
                    {
                        AuthorizationUrl = T("authorization_url"),
                        TokenUrl = T("token_url"),
                        ClientId = T("client_id"),
                        ClientSecret = T("client_secret"),
                        RefreshToken = "{{ credentials.refresh_token }}",
                        Scopes = StrList(obj, "scopes"),
                        ClientAuth = Str(obj, "client_auth") ?? "body",
                        AuthorizationParams = Obj(obj["authorization_params"]) is null ? new Dictionary<string, string>() : StrMap(obj, "authorization_params", "/auth", scope),
                    };
                case "session":
                    var login = Obj(obj["login"]);
                    if (login is null)
                    {
                        return spec;
                    }
                    var request = Request(login["request"], "/auth/login/request", scope) ?? new RequestSpec("POST");
                    var extract = Extract(login, "/auth/login");
                    if (extract.Count == 0)
                    {
                        Error("/auth/login/extract", "A session login must extract at least one value (e.g. token: \"$.token\").");
                    }
                    var apply = Obj(obj["apply"]);
                    var headers = apply is null ? new Dictionary<string, string>() : StrMap(apply, "headers", "/auth/apply", scope);
                    var query = apply is null ? new Dictionary<string, string>() : StrMap(apply, "query", "/auth/apply", scope);
                    return spec with { Session = new SessionSpec(request, extract, headers, query) };
                default:
                    return spec;
            }
        }
    }
}
