using System.Text.Json;
using System.Text.RegularExpressions;
using Plugboard.Data;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Credentials;

public sealed record CreateCredentialRequest(string Name, string AuthType, Dictionary<string, string> Secret, DateTimeOffset? ExpiresAt = null);

public sealed record UpdateCredentialRequest(string? Name = null, Dictionary<string, string>? Secret = null, DateTimeOffset? ExpiresAt = null);

/// <summary>A credential as the API shows it: never the secret, only which fields it holds and a masked hint.</summary>
public sealed record Credential
{
    public Guid Id { get; init; }
    public string Name { get; init; } = "";
    public string AuthType { get; init; } = "";
    public string MaskedHint { get; init; } = "";
    public string[] SecretFields { get; init; } = [];
    public DateTime? ExpiresAt { get; init; }
    public DateTime CredentialsUpdatedAt { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}

public static partial class CredentialsApi
{
    public static readonly string[] AuthTypes = ["api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token", "oauth2_authorization_code", "session", "custom"];

    public static void Map(RouteGroupBuilder workspace)
    {
        var credentials = workspace.MapGroup("/credentials").WithTags("Credentials");
        credentials.MapGet("", List).Produces<Page<Credential>>();
        credentials.MapGet("/{credentialId:guid}", Get).Produces<Credential>();
        credentials.MapPost("", Create).Produces<Credential>(201);
        credentials.MapPatch("/{credentialId:guid}", Update).Produces<Credential>();
        credentials.MapDelete("/{credentialId:guid}", Delete).Produces(204);
    }

    private const string Columns = "id, name, auth_type, masked_hint, secret_fields, expires_at, credentials_updated_at, created_at, updated_at";

    private static async Task<IResult> List(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<Credential>(
            $"SELECT {Columns} FROM workspace_api_credentials WHERE (@after::uuid IS NULL OR id < @after) ORDER BY id DESC LIMIT @take",
            new { after = Paging.AfterId(cursor), take = take + 1 }, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, c => c.Id));
    }

    private static async Task<IResult> Get(Guid credentialId, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var (credential, version) = await Find(db, credentialId, ct);
        ETags.Set(http, version);
        return TypedResults.Ok(credential);
    }

    private static async Task<IResult> Create(CreateCredentialRequest body, RequestDb db, KeyRing keys, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("admin", "create credentials");
        var name = Validate.Name(body.Name);
        var authType = Validate.OneOf(body.AuthType, AuthTypes, "auth_type");
        var secret = ValidateSecret(body.Secret);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var credential = await InsertAsync(db, keys, name, authType, secret, body.ExpiresAt, ct);
        await Audit.WriteAsync(db, "credential.created", "credential", credential.Id.ToString(), new { name, auth_type = authType, fields = credential.SecretFields }, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/credentials/{credential.Id}", credential, ct);
    }

    /// <summary>Encrypts and stores a credential in the current workspace (also used by template installs).</summary>
    public static async Task<Credential> InsertAsync(RequestDb db, KeyRing keys, string name, string authType, Dictionary<string, string> secret, DateTimeOffset? expiresAt, CancellationToken ct)
    {
        var id = Guid.CreateVersion7();
        var payload = keys.Encrypt(JsonSerializer.Serialize(secret), KeyRing.Aad(db.WorkspaceId!, "workspace_api_credentials", id, "encrypted_payload"));
        return (await db.QuerySingleOrDefaultAsync<Credential>(
            $"""
            INSERT INTO workspace_api_credentials (workspace_id, id, name, auth_type, encrypted_payload, key_id, masked_hint, secret_fields, expires_at, created_by)
            VALUES (app_workspace_id(), @id, @name, @authType, @payload, @keyId, @hint, @fields, @expiresAt, app_user_id())
            RETURNING {Columns}
            """, new { id, name, authType, payload, keyId = keys.CurrentKeyId, hint = MaskedHint(secret), fields = secret.Keys.Order().ToArray(), expiresAt = expiresAt?.UtcDateTime }, ct))!;
    }

    private static async Task<IResult> Update(Guid credentialId, UpdateCredentialRequest body, RequestDb db, KeyRing keys, HttpContext http, CancellationToken ct)
    {
        await Find(db, credentialId, ct);
        db.RequireRole("admin", "change credentials");
        var ifMatch = ETags.IfMatch(http.Request);
        var name = body.Name is null ? null : Validate.Name(body.Name);
        var secret = body.Secret is null ? null : ValidateSecret(body.Secret);
        var payload = secret is null ? null
            : keys.Encrypt(JsonSerializer.Serialize(secret), KeyRing.Aad(db.WorkspaceId!, "workspace_api_credentials", credentialId, "encrypted_payload"));
        var row = await db.QuerySingleOrDefaultAsync<CredentialRow>(
            $"""
            UPDATE workspace_api_credentials
               SET name = coalesce(@name, name),
                   {(payload is null ? "" : "encrypted_payload = @payload, key_id = @keyId,")}
                   masked_hint = coalesce(@hint, masked_hint),
                   secret_fields = coalesce(@fields, secret_fields),
                   expires_at = CASE WHEN @setExpiry THEN @expiresAt ELSE expires_at END,
                   credentials_updated_at = CASE WHEN @payload::text IS NULL THEN credentials_updated_at ELSE now() END
             WHERE id = @credentialId AND (@ifMatch::bigint[] IS NULL OR row_version = ANY(@ifMatch))
            RETURNING {Columns}, row_version
            """,
            new
            {
                credentialId,
                name,
                payload,
                keyId = keys.CurrentKeyId,
                hint = secret is null ? null : MaskedHint(secret),
                fields = secret?.Keys.Order().ToArray(),
                setExpiry = body.ExpiresAt is not null,
                expiresAt = body.ExpiresAt?.UtcDateTime,
                ifMatch,
            }, ct) ?? throw Problems.PreconditionFailed("The credential changed since you read it: GET it again and retry with the new ETag.");
        if (secret is not null)
        {
            await db.ExecuteAsync("UPDATE connectors SET credentials_updated_at = now() WHERE credential_id = @credentialId", new { credentialId }, ct);
        }
        await Audit.WriteAsync(db, "credential.updated", "credential", credentialId.ToString(), new { name, secret_rotated = secret is not null, fields = secret?.Keys.Order() }, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToCredential());
    }

    private static async Task<IResult> Delete(Guid credentialId, RequestDb db, CancellationToken ct)
    {
        await Find(db, credentialId, ct);
        db.RequireRole("admin", "delete credentials");
        await db.ExecuteAsync("DELETE FROM workspace_api_credentials WHERE id = @credentialId", new { credentialId }, ct);
        await Audit.WriteAsync(db, "credential.deleted", "credential", credentialId.ToString(), null, ct);
        return TypedResults.NoContent();
    }

    private static async Task<(Credential, long)> Find(RequestDb db, Guid credentialId, CancellationToken ct)
    {
        var row = await db.QuerySingleOrDefaultAsync<CredentialRow>(
            $"SELECT {Columns}, row_version FROM workspace_api_credentials WHERE id = @credentialId", new { credentialId }, ct)
            ?? throw Problems.NotFound("The credential");
        return (row.ToCredential(), row.RowVersion);
    }

    public static Dictionary<string, string> ValidateSecret(Dictionary<string, string>? secret, string field = "secret")
    {
        if (secret is null || secret.Count is 0 or > 20)
        {
            throw Problems.Invalid($"{field} must hold 1 to 20 fields.", "/" + field);
        }
        foreach (var (key, value) in secret)
        {
            if (!FieldName().IsMatch(key))
            {
                throw Problems.Invalid($"{field} field names must be lower_snake_case (1-64 characters).", $"/{field}");
            }
            if (string.IsNullOrEmpty(value) || value.Length > 16_384)
            {
                throw Problems.Invalid($"{field}.{key} must be 1 to 16384 characters.", $"/{field}/{key}");
            }
        }
        return secret;
    }

    /// <summary>A hint that tells keys apart without revealing them: the last four characters of a long secret only.</summary>
    public static string MaskedHint(Dictionary<string, string> secret)
    {
        var longest = secret.Values.MaxBy(v => v.Length) ?? "";
        return longest.Length >= 16 ? "••••" + longest[^4..] : "••••";
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,63}$")]
    private static partial Regex FieldName();

    private sealed record CredentialRow
    {
        public Guid Id { get; init; }
        public string Name { get; init; } = "";
        public string AuthType { get; init; } = "";
        public string MaskedHint { get; init; } = "";
        public string[] SecretFields { get; init; } = [];
        public DateTime? ExpiresAt { get; init; }
        public DateTime CredentialsUpdatedAt { get; init; }
        public DateTime CreatedAt { get; init; }
        public DateTime UpdatedAt { get; init; }
        public long RowVersion { get; init; }

        public Credential ToCredential() => new()
        {
            Id = Id,
            Name = Name,
            AuthType = AuthType,
            MaskedHint = MaskedHint,
            SecretFields = SecretFields,
            ExpiresAt = ExpiresAt,
            CredentialsUpdatedAt = CredentialsUpdatedAt,
            CreatedAt = CreatedAt,
            UpdatedAt = UpdatedAt,
        };
    }
}
