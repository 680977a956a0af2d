using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Features.Connectors;
using Plugboard.Features.Templates;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Credentials;

public sealed record StartOAuthRequest(
    Guid? ConnectorId = null,
    Guid? TemplateId = null,
    JsonElement? Manifest = null,
    JsonElement? Config = null,
    string? ClientId = null,
    string? ClientSecret = null,
    string? Name = null,
    string? RedirectTo = null);

/// <summary>A started connection. <see cref="AuthorizationUrl"/> is shown once, in the answer to the start.</summary>
public sealed record OAuthAuthorization
{
    public Guid Id { get; init; }
    public string Status { get; init; } = "";
    public string? AuthorizationUrl { get; init; }
    public string? RedirectUri { get; init; }
    public Guid? ConnectorId { get; init; }
    public Guid? TemplateId { get; init; }
    public string CredentialName { get; init; } = "";
    public Guid? CredentialId { get; init; }
    public string? Error { get; init; }
    public string? RedirectTo { get; init; }
    public DateTime ExpiresAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public DateTime CreatedAt { get; init; }
}

/// <summary>Where the provider sends the browser back (PLUGBOARD_PUBLIC_URL + /v1/oauth/callback), and how long a state lives.</summary>
public sealed record OAuthSettings(Uri? PublicUrl, TimeSpan StateLifetime)
{
    public const string CallbackPath = "/v1/oauth/callback";

    public static OAuthSettings FromConfiguration(IConfiguration configuration)
    {
        var text = configuration["PLUGBOARD_PUBLIC_URL"];
        Uri? url = null;
        if (!string.IsNullOrWhiteSpace(text)
            && (!Uri.TryCreate(text.Trim(), UriKind.Absolute, out url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps) || url.Query.Length > 0))
        {
            throw new Hosting.InvalidSettingException($"PLUGBOARD_PUBLIC_URL must be the absolute http(s) URL clients reach the API at (e.g. https://plugboard.example.com); it is '{text}'.");
        }
        return new OAuthSettings(url, TimeSpan.FromMinutes(Hosting.Settings.Int(configuration, "PLUGBOARD_OAUTH_STATE_MINUTES", 10, 1, 60)));
    }

    public string RedirectUri(HttpRequest request) => Absolute(request, CallbackPath);

    /// <summary>A path of this API as clients reach it: under PLUGBOARD_PUBLIC_URL, else the request's own scheme and host.</summary>
    public string Absolute(HttpRequest request, string path) =>
        (PublicUrl is { } url ? url.GetLeftPart(UriPartial.Path).TrimEnd('/') : $"{request.Scheme}://{request.Host}") + path;
}

/// <summary>
/// Connecting an account: the OAuth2 authorization-code flow with PKCE (S256) and a single-use <c>state</c> bound to
/// the workspace and the admin who started it. The callback exchanges the code through the connector engine (SSRF
/// guard, redaction) and stores the tokens as an encrypted credential; runs then refresh them as for any OAuth2 credential.
/// </summary>
public static class OAuthConnectApi
{
    private const string Columns = "id, status, connector_id, template_id, credential_name, credential_id, error, redirect_to, expires_at, completed_at, created_at";

    public static void Map(IEndpointRouteBuilder app, RouteGroupBuilder workspace)
    {
        var oauth = workspace.MapGroup("/credentials/oauth").WithTags("Credentials");
        oauth.MapPost("/start", Start).Produces<OAuthAuthorization>(201);
        oauth.MapGet("/{authorizationId:guid}", Get).Produces<OAuthAuthorization>();
        app.MapGet(OAuthSettings.CallbackPath, Callback).WithTags("Credentials").AllowAnonymous().Produces(200, contentType: "text/html").Produces(302);
    }

    private static async Task<IResult> Start(StartOAuthRequest body, RequestDb db, KeyRing keys, ConnectorRunner runner, OAuthSettings settings, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("admin", "connect accounts");
        if ((body.ConnectorId is null ? 0 : 1) + (body.TemplateId is null ? 0 : 1) + (body.Manifest is null ? 0 : 1) != 1)
        {
            throw Problems.Invalid("Send exactly one of connector_id, template_id or manifest: what the account is connected for.", "/connector_id");
        }
        string manifestJson, configJson, defaultName;
        if (body.ConnectorId is { } connectorId)
        {
            var connector = await ConnectorsApi.Find(db, connectorId, ct);
            if (body.Config is not null)
            {
                throw Problems.Invalid("A connector's config is its own: leave config out when you send connector_id.", "/config");
            }
            (manifestJson, configJson, defaultName) = (connector.Manifest, connector.Config, $"{connector.Name} account");
        }
        else if (body.TemplateId is { } templateId)
        {
            var template = await TemplatesApi.Find(db, templateId, ct);
            if (template.Status != "published" && template.WorkspaceId != db.WorkspaceId)
            {
                throw Problems.NotFound("The template");
            }
            (manifestJson, configJson, defaultName) = (template.Manifest, JsonColumns.Object(body.Config, "config"), $"{template.Name} account");
        }
        else
        {
            (manifestJson, configJson, defaultName) = (ConnectorsApi.ValidManifest(body.Manifest), JsonColumns.Object(body.Config, "config"), "Connected account");
        }
        ConnectorsApi.CheckConfig(manifestJson, configJson);
        var manifest = ManifestParser.Parse(JsonColumns.Node(manifestJson)).Manifest
                       ?? throw Problems.Invalid("The connector has no valid manifest yet: save one before connecting an account.", "/connector_id");
        if (manifest.Auth.Type != AuthSpec.AuthorizationCode)
        {
            throw Problems.Invalid($"The manifest's auth is {manifest.Auth.Type}: connecting an account needs auth of type oauth2_authorization_code.", "/manifest/auth/type");
        }
        var clientId = Secret(body.ClientId, "client_id", required: true)!;
        var clientSecret = Secret(body.ClientSecret, "client_secret", required: false);
        var name = Validate.Name(body.Name ?? defaultName);
        var redirectTo = body.RedirectTo is null ? null : RedirectTarget(body.RedirectTo);
        // No Idempotency-Key replay here: it would store the answer, and with it the state, in the clear.

        var state = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var verifier = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var challenge = Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        var redirectUri = settings.RedirectUri(http.Request);
        Uri authorizationUrl;
        try
        {
            authorizationUrl = await runner.AuthorizationUrlAsync(manifest, (JsonObject)JsonColumns.Node(configJson)!, new AuthorizationRequest(clientId, redirectUri, state, challenge));
        }
        catch (Exception e) when (e is RunFailedException or Engine.Templating.TemplateException)
        {
            throw Problems.Invalid(e.Message, "/manifest/auth/authorization_url");
        }
        var id = Guid.CreateVersion7();
        var secret = new Dictionary<string, string> { ["client_id"] = clientId, ["code_verifier"] = verifier };
        if (clientSecret is not null)
        {
            secret["client_secret"] = clientSecret;
        }
        var payload = keys.Encrypt(JsonSerializer.Serialize(secret), KeyRing.Aad(db.WorkspaceId!, "oauth_authorizations", id, "encrypted_payload"));
        var row = await db.QuerySingleOrDefaultAsync<OAuthAuthorization>(
            $"""
            INSERT INTO oauth_authorizations (workspace_id, id, state_hash, created_by, connector_id, template_id, manifest, config, credential_name,
                                              encrypted_payload, redirect_uri, redirect_to, expires_at)
            VALUES (app_workspace_id(), @id, @stateHash, app_user_id(), @connectorId, @templateId, @manifestJson::jsonb, @configJson::jsonb, @name,
                    @payload, @redirectUri, @redirectTo, now() + @lifetime)
            RETURNING {Columns}
            """,
            new
            {
                id,
                stateHash = SHA256.HashData(Encoding.ASCII.GetBytes(state)),
                connectorId = body.ConnectorId,
                templateId = body.TemplateId,
                manifestJson,
                configJson,
                name,
                payload,
                redirectUri,
                redirectTo,
                lifetime = settings.StateLifetime,
            }, ct);
        await Audit.WriteAsync(db, "credential.oauth_started", "oauth_authorization", id.ToString(), new { connector_id = body.ConnectorId, template_id = body.TemplateId, name }, ct);
        return TypedResults.Created($"/v1/workspaces/{db.WorkspaceId}/credentials/oauth/{id}",
            row! with { AuthorizationUrl = authorizationUrl.AbsoluteUri, RedirectUri = redirectUri });
    }

    private static async Task<IResult> Get(Guid authorizationId, RequestDb db, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<OAuthAuthorization>(
            $"SELECT {Columns.Replace("status", "CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired' ELSE status END AS status", StringComparison.Ordinal)} FROM oauth_authorizations WHERE id = @authorizationId",
            new { authorizationId }, ct) ?? throw Problems.NotFound("The OAuth authorization");
        return TypedResults.Ok(row);
    }

    private sealed record ClaimedState(string WorkspaceId, Guid Id, Guid CreatedBy, Guid? ConnectorId, string Manifest, string Config, string CredentialName,
        string EncryptedPayload, string RedirectUri, string? RedirectTo);

    /// <summary>
    /// The provider's redirect. No API key: the state is the proof, used once (claimed before anything else happens, so
    /// a replay finds it used), within its lifetime, and acted on as the admin who started the flow, in their workspace.
    /// </summary>
    private static async Task<IResult> Callback(HttpContext http, Db database, RequestDb db, KeyRing keys, ConnectorRunner runner, ILoggerFactory logs, CancellationToken ct)
    {
        var query = http.Request.Query;
        var state = query["state"].ToString();
        if (state.Length is 0 or > 256)
        {
            throw InvalidState("The callback has no state: open the authorization URL that POST …/credentials/oauth/start returned.");
        }
        var stateHash = SHA256.HashData(Encoding.ASCII.GetBytes(state));
        ClaimedState? claimed;
        await using (var service = await database.Service.OpenConnectionAsync(ct))
        {
            claimed = await service.QuerySingleOrDefaultAsync<ClaimedState>(new CommandDefinition(
                """
                UPDATE oauth_authorizations SET status = 'exchanging'
                 WHERE state_hash = @stateHash AND status = 'pending' AND expires_at > now()
                RETURNING workspace_id, id, created_by, connector_id, manifest::text, config::text, credential_name, encrypted_payload, redirect_uri, redirect_to
                """, new { stateHash }, cancellationToken: ct));
            if (claimed is null)
            {
                var known = await service.QuerySingleOrDefaultAsync<(string Status, bool Expired)?>(new CommandDefinition(
                    "SELECT status, expires_at <= now() FROM oauth_authorizations WHERE state_hash = @stateHash", new { stateHash }, cancellationToken: ct));
                throw known switch
                {
                    null => InvalidState("This state was not issued by this server (or its attempt was deleted): start the connection again."),
                    { Status: "pending" } => InvalidState("This authorization expired before the provider sent you back: start the connection again."),
                    _ => InvalidState("This authorization was used already; a state is good for one callback. Start the connection again."),
                };
            }
        }

        var code = query["code"].ToString();
        var providerError = query["error"].ToString();
        string? failure = null;
        var failureStatus = 400;
        Guid credentialId = default;
        if (providerError.Length > 0)
        {
            var description = query["error_description"].ToString();
            failure = Truncate($"The provider did not grant access: {providerError}{(description.Length > 0 ? $" ({description})" : "")}.", 500);
        }
        else if (code.Length is 0 or > 4096)
        {
            failure = "The provider sent no authorization code back.";
        }
        else
        {
            try
            {
                // From here on the browser leaving does not stop anything: the code is spent, and the tokens it buys are kept.
                (failure, failureStatus, credentialId) = await ExchangeAndStoreAsync(db, keys, runner, claimed, code, CancellationToken.None);
            }
            catch (Exception e)
            {
                // Never left "exchanging": the attempt says it failed, and the error is answered as any other.
                await MarkFailedAsync(database, claimed, "The connection could not be completed because of a server error; start it again.");
                logs.CreateLogger("Plugboard.OAuth").LogError(e, "OAuth connection {AuthorizationId} failed", claimed.Id);
                throw;
            }
        }

        if (failure is not null)
        {
            await MarkFailedAsync(database, claimed, failure);
            logs.CreateLogger("Plugboard.OAuth").LogWarning("OAuth connection {AuthorizationId} failed: {Failure}", claimed.Id, failure);
            if (claimed.RedirectTo is not null)
            {
                return Results.Redirect(WithQuery(claimed.RedirectTo, ("oauth_id", claimed.Id.ToString()), ("status", "failed"), ("error", failure)));
            }
            throw new ProblemException(failureStatus, failureStatus == 403 ? "forbidden" : "oauth-failed", "Account not connected", failure,
                new Dictionary<string, object?> { ["oauth_id"] = claimed.Id });
        }
        await db.CommitAsync(CancellationToken.None);
        if (claimed.RedirectTo is not null)
        {
            return Results.Redirect(WithQuery(claimed.RedirectTo, ("oauth_id", claimed.Id.ToString()), ("status", "completed"), ("credential_id", credentialId.ToString())));
        }
        http.Response.Headers.ContentSecurityPolicy = "default-src 'none'";
        return Results.Content("<!doctype html><html><head><meta charset=\"utf-8\"><title>Account connected</title></head>" +
                               "<body><h1>Account connected</h1><p>Plugboard stored the credential. You can close this window.</p></body></html>", "text/html; charset=utf-8");
    }

    private static async Task<(string? Failure, int Status, Guid CredentialId)> ExchangeAndStoreAsync(RequestDb db, KeyRing keys, ConnectorRunner runner,
        ClaimedState claimed, string code, CancellationToken ct)
    {
        await db.ActAsUserAsync(claimed.CreatedBy, ct);
        if (!Roles.AtLeast(await db.EnterWorkspaceAsync(claimed.WorkspaceId, ct), "admin"))
        {
            return ("The person who started this connection is no longer an admin of the workspace.", 403, default);
        }
        var secret = JsonSerializer.Deserialize<Dictionary<string, string>>(
            keys.Decrypt(claimed.EncryptedPayload, KeyRing.Aad(claimed.WorkspaceId, "oauth_authorizations", claimed.Id, "encrypted_payload")))!;
        var verifier = secret["code_verifier"];
        secret.Remove("code_verifier");
        var manifest = ManifestParser.Parse(JsonColumns.Node(claimed.Manifest)).Manifest
                       ?? throw new InvalidOperationException("The manifest stored with the authorization no longer parses.");
        var exchange = await runner.ExchangeCodeAsync(manifest, new RunRequest([], (JsonObject)JsonColumns.Node(claimed.Config)!, secret), code, verifier, claimed.RedirectUri, ct);
        if (exchange.Fields is null)
        {
            return (Truncate($"The token exchange failed: {exchange.Error}", 1000), 400, default);
        }
        return (null, 0, await StoreAsync(db, keys, claimed, new Dictionary<string, string>(exchange.Fields), ct));
    }

    private static async Task MarkFailedAsync(Db database, ClaimedState claimed, string failure)
    {
        await using var service = await database.Service.OpenConnectionAsync(CancellationToken.None);
        await service.ExecuteAsync(new CommandDefinition(
            "UPDATE oauth_authorizations SET status = 'failed', error = @failure, completed_at = now() WHERE workspace_id = @WorkspaceId AND id = @Id",
            new { failure, claimed.WorkspaceId, claimed.Id }));
    }

    /// <summary>
    /// Stores the tokens: a connector that already has a connected-account credential gets it replaced (reconnecting
    /// renews consent without re-wiring anything); otherwise a new credential, attached to the connector when there is one.
    /// </summary>
    private static async Task<Guid> StoreAsync(RequestDb db, KeyRing keys, ClaimedState claimed, Dictionary<string, string> fields, CancellationToken ct)
    {
        Guid? existing = claimed.ConnectorId is null ? null : await db.QuerySingleOrDefaultAsync<Guid?>(
            """
            SELECT c.id FROM connectors k JOIN workspace_api_credentials c ON c.id = k.credential_id
             WHERE k.id = @ConnectorId AND c.auth_type = 'oauth2_authorization_code'
            """, new { claimed.ConnectorId }, ct);
        Guid credentialId;
        if (existing is { } id)
        {
            var payload = keys.Encrypt(JsonSerializer.Serialize(fields), KeyRing.Aad(claimed.WorkspaceId, "workspace_api_credentials", id, "encrypted_payload"));
            await db.ExecuteAsync(
                """
                UPDATE workspace_api_credentials SET encrypted_payload = @payload, key_id = @keyId, masked_hint = @hint, secret_fields = @fields, credentials_updated_at = now(),
                       refreshing_until = NULL -- a refresh of the old account in flight cannot write its tokens back over these
                 WHERE id = @id
                """, new { id, payload, keyId = keys.CurrentKeyId, hint = CredentialsApi.MaskedHint(fields), fields = fields.Keys.Order().ToArray() }, ct);
            await db.ExecuteAsync("UPDATE connectors SET credentials_updated_at = now() WHERE credential_id = @id", new { id }, ct);
            await Audit.WriteAsync(db, "credential.updated", "credential", id.ToString(), new { secret_rotated = true, oauth_id = claimed.Id }, ct);
            credentialId = id;
        }
        else
        {
            var name = claimed.CredentialName;
            if (await db.QuerySingleOrDefaultAsync<bool>("SELECT EXISTS (SELECT 1 FROM workspace_api_credentials WHERE name = @name)", new { name }, ct))
            {
                name = Truncate($"{name} ({DateTime.UtcNow:yyyy-MM-dd HH:mm:ss})", 200);
            }
            var credential = await CredentialsApi.InsertAsync(db, keys, name, AuthSpec.AuthorizationCode, fields, null, ct);
            await Audit.WriteAsync(db, "credential.created", "credential", credential.Id.ToString(), new { name, auth_type = AuthSpec.AuthorizationCode, oauth_id = claimed.Id }, ct);
            credentialId = credential.Id;
            if (claimed.ConnectorId is { } connectorId)
            {
                await db.ExecuteAsync("UPDATE connectors SET credential_id = @credentialId, credentials_updated_at = now() WHERE id = @connectorId", new { credentialId, connectorId }, ct);
            }
        }
        await db.ExecuteAsync("UPDATE oauth_authorizations SET status = 'completed', credential_id = @credentialId, completed_at = now() WHERE id = @Id",
            new { credentialId, claimed.Id }, ct);
        return credentialId;
    }

    private static ProblemException InvalidState(string detail) => new(400, "oauth-state-invalid", "Invalid OAuth state", detail);

    private static string? Secret(string? value, string field, bool required)
    {
        if (value is null && !required)
        {
            return null;
        }
        return value is { Length: > 0 and <= 16_384 } ? value : throw Problems.Invalid($"{field} must be 1 to 16384 characters: the id of your OAuth app at the provider.", "/" + field);
    }

    private static string RedirectTarget(string value) =>
        value.Length <= 2048 && Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp) && uri.Fragment.Length == 0
            ? uri.AbsoluteUri
            : throw Problems.Invalid("redirect_to must be an absolute http(s) URL without a fragment (at most 2048 characters).", "/redirect_to");

    private static string WithQuery(string url, params (string Name, string Value)[] parameters) =>
        Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(url, parameters.Select(p => KeyValuePair.Create(p.Name, (string?)p.Value)));

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max];
}
