using System.Text.Json;
using System.Text.RegularExpressions;
using Plugboard.Features.Connectors;
using Plugboard.Http;

namespace Plugboard.Features.Templates;

/// <summary>A field the installer must supply for the template's credential.</summary>
public sealed record CredentialField(string Name, string? Label = null, bool Required = true, string? Description = null);

public sealed record TemplateWriteRequest(
    string Slug,
    string Name,
    JsonElement Manifest,
    string? Description = null,
    string? Category = null,
    string[]? Tags = null,
    CredentialField[]? CredentialFields = null,
    string? AuthType = null);

public sealed record TemplateUpdateRequest(
    string? Name = null,
    JsonElement? Manifest = null,
    string? Description = null,
    string? Category = null,
    string[]? Tags = null,
    CredentialField[]? CredentialFields = null,
    string? AuthType = null,
    string? Status = null);

public sealed record Template(
    Guid Id, string Kind, string? WorkspaceId, string Slug, string Name, string Description, string Category, string[] Tags,
    string Status, bool Featured, int Version, string AuthType, CredentialField[] CredentialFields, long InstallCount,
    string? RejectionReason, DateTime? PublishedAt, DateTime CreatedAt, DateTime UpdatedAt, JsonElement? Manifest = null);

internal sealed record TemplateRow
{
    public Guid Id { get; init; }
    public string Kind { get; init; } = "";
    public string? WorkspaceId { get; init; }
    public string Slug { get; init; } = "";
    public string Name { get; init; } = "";
    public string Description { get; init; } = "";
    public string Category { get; init; } = "";
    public string[] Tags { get; init; } = [];
    public string Status { get; init; } = "";
    public bool Featured { get; init; }
    public int Version { get; init; }
    public string AuthType { get; init; } = "";
    public string CredentialFields { get; init; } = "[]";
    public long InstallCount { get; init; }
    public string? RejectionReason { get; init; }
    public DateTime? PublishedAt { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    public string Manifest { get; init; } = "{}";
    public long RowVersion { get; init; }

    public Template ToTemplate(bool withManifest = true) => new(Id, Kind, WorkspaceId, Slug, Name, Description, Category, Tags, Status, Featured, Version,
        AuthType, JsonSerializer.Deserialize<CredentialField[]>(CredentialFields, ApiJson.Options) ?? [], InstallCount, RejectionReason, PublishedAt,
        CreatedAt, UpdatedAt, withManifest ? JsonColumns.Element(Manifest) : null);
}

internal static partial class TemplateRules
{
    public const string Columns =
        """
        id, kind, workspace_id, slug, name, description, category, tags, status, featured, version, auth_type, credential_fields::text AS credential_fields,
        install_count, rejection_reason, published_at, created_at, updated_at, manifest::text AS manifest, xmin::text::bigint AS row_version
        """;

    public static readonly string[] AuthTypes = ["none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token", "oauth2_authorization_code", "session", "custom"];

    public sealed record Checked(string Slug, string Name, string Manifest, string Description, string Category, string[] Tags, string CredentialFields, string AuthType);

    public static Checked Check(TemplateWriteRequest body)
    {
        if (!Slug().IsMatch(body.Slug ?? ""))
        {
            throw Problems.Invalid("slug must be lowercase letters, digits and '-', starting with a letter or digit (at most 99).", "/slug");
        }
        return new Checked(body.Slug!, Validate.Name(body.Name), ConnectorsApi.ValidManifest(body.Manifest),
            Validate.Text(body.Description, "description", 4000), Category(body.Category), Tags(body.Tags), Fields(body.CredentialFields),
            AuthType(body.AuthType));
    }

    public static string Category(string? category) =>
        category is null ? "other" : Slug().IsMatch(category) && category.Length <= 50 ? category : throw Problems.Invalid("category must be a short lowercase word.", "/category");

    public static string[] Tags(string[]? tags)
    {
        tags ??= [];
        if (tags.Length > 20 || tags.Any(t => t is null || !Slug().IsMatch(t) || t.Length > 40))
        {
            throw Problems.Invalid("tags must be at most 20 short lowercase words.", "/tags");
        }
        return tags.Distinct().ToArray();
    }

    public static string AuthType(string? authType) => authType is null ? "none" : Validate.OneOf(authType, AuthTypes, "auth_type");

    public static string Fields(CredentialField[]? fields)
    {
        fields ??= [];
        if (fields.Length > 20 || fields.Any(f => f is null || !FieldName().IsMatch(f.Name ?? "")) || fields.Select(f => f.Name).Distinct().Count() != fields.Length)
        {
            throw Problems.Invalid("credential_fields must be at most 20 fields with unique lower_snake_case names.", "/credential_fields");
        }
        return JsonSerializer.Serialize(fields, ApiJson.Options);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,98}$")]
    private static partial Regex Slug();

    [GeneratedRegex("^[a-z][a-z0-9_]{0,63}$")]
    private static partial Regex FieldName();
}
