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
            if (!root.TryGetPropertyValue("auth", out var node) || node is null)
            {
                return AuthSpec.None;
            }
            if (node is not JsonObject obj)
            {
                Error("/auth", $"'auth' must be an object, not {Kind(node)}.");
                return AuthSpec.None;
            }
            var type = Str(obj, "type", "/auth", required: true) ?? "none";
            string[] allowed = type switch
            {
                "none" => ["type"],
                "api_key" => ["type", "in", "name", "value"],
                "bearer" => ["type", "token"],
                "basic" => ["type", "username", "password"],
                "oauth2_client_credentials" => ["type", "token_url", "client_id", "client_secret", "scopes", "audience", "client_auth"],
                "oauth2_refresh_token" => ["type", "token_url", "client_id", "client_secret", "refresh_token", "scopes", "client_auth"],
                "session" => ["type", "login", "apply"],
                _ => [],
            };
            if (!AuthTypes.Contains(type))
            {
                Error("/auth/type", $"Unknown auth type '{type}'; expected one of {string.Join(", ", AuthTypes)}.");
                return AuthSpec.None;
            }
            Keys(obj, "/auth", allowed);
            var scope = StepScope.None;
            string? T(string key, bool required)
            {
                var value = Str(obj, key, "/auth", required);
                Template(value, $"/auth/{key}", scope);
                return value;
            }
            var spec = new AuthSpec(type);
            switch (type)
            {
                case "api_key":
                    var where = Str(obj, "in", "/auth", required: false) ?? "header";
                    if (where is not ("header" or "query"))
                    {
                        Error("/auth/in", $"'in' must be 'header' or 'query', not '{where}'.");
                    }
                    return spec with { In = where, Name = T("name", true), Value = T("value", true) };
                case "bearer":
                    return spec with { Token = T("token", true) };
                case "basic":
                    return spec with { Username = T("username", true), Password = T("password", false) };
                case "oauth2_client_credentials":
                case "oauth2_refresh_token":
                    var clientAuth = Str(obj, "client_auth", "/auth", required: false) ?? "body";
                    if (clientAuth is not ("body" or "basic"))
                    {
                        Error("/auth/client_auth", $"'client_auth' must be 'body' or 'basic', not '{clientAuth}'.");
                    }
                    return spec with
                    {
                        TokenUrl = T("token_url", true),
                        ClientId = T("client_id", true),
                        ClientSecret = T("client_secret", type == "oauth2_client_credentials"),
                        RefreshToken = type == "oauth2_refresh_token" ? T("refresh_token", true) : null,
                        Scopes = StrList(obj, "scopes", "/auth"),
                        Audience = type == "oauth2_client_credentials" ? T("audience", false) : null,
                        ClientAuth = clientAuth,
                    };
                case "session":
                    var login = Obj(obj["login"], "/auth/login", ["request", "extract"]);
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
                    var apply = Obj(obj["apply"], "/auth/apply", ["headers", "query"]);
                    var headers = apply is null ? new Dictionary<string, string>() : StrMap(apply, "headers", "/auth/apply", scope);
                    var query = apply is null ? new Dictionary<string, string>() : StrMap(apply, "query", "/auth/apply", scope);
                    return spec with { Session = new SessionSpec(request, extract, headers, query) };
                default:
                    return spec;
            }
        }
    }
}
