using System.Text.Json;
using Plugboard.Data;
using Plugboard.Features.Connectors;
using Plugboard.Features.Credentials;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Templates;

public sealed record InstallTemplateRequest(
    string WorkspaceId,
    string? Name = null,
    Guid? CredentialId = null,
    Dictionary<string, string>? Credentials = null,
    JsonElement? Config = null,
    string? SyncFrequency = null,
    string? SyncTimezone = null);

/// <summary>The marketplace (published templates), installs, and workspaces' own community templates.</summary>
public static class TemplatesApi
{
    public static void Map(RouteGroupBuilder v1, RouteGroupBuilder workspace)
    {
        var market = v1.MapGroup("/templates").WithTags("Templates");
        market.MapGet("", Search).Produces<Page<Template>>();
        market.MapGet("/{templateId:guid}", Get).Produces<Template>();
        market.MapPost("/{templateId:guid}/install", Install).Produces<Connector>(201);

        var community = workspace.MapGroup("/templates").WithTags("Templates");
        community.MapGet("", ListCommunity).Produces<Page<Template>>();
        community.MapPost("", CreateCommunity).Produces<Template>(201);
        community.MapPatch("/{templateId:guid}", UpdateCommunity).Produces<Template>();
        community.MapDelete("/{templateId:guid}", DeleteCommunity).Produces(204);
    }

    /// <summary>Published templates, most installed first; filter by text, category, tag, kind and featured.</summary>
    internal static async Task<IResult> Search(RequestDb db, string? q, string? category, string? tag, string? kind, bool? featured, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        if (kind is not null and not "official" and not "community")
        {
            throw Problems.BadRequest("kind must be 'official' or 'community'.");
        }
        if (q is { Length: > 200 })
        {
            throw Problems.BadRequest("q must be at most 200 characters.");
        }
        long? afterInstalls = null;
        Guid? afterId = null;
        if (Paging.After(cursor) is { } key)
        {
            var parts = key.Split('|');
            if (parts.Length != 2 || !long.TryParse(parts[0], out var installs) || !Guid.TryParse(parts[1], out var id))
            {
                throw Problems.BadRequest("cursor is not valid: pass back the next_cursor of the previous page.");
            }
            (afterInstalls, afterId) = (installs, id);
        }
        var rows = await db.QueryAsync<TemplateRow>(
            $"""
            SELECT {TemplateRules.Columns} FROM connector_templates
             WHERE status = 'published'
               AND (@q::text IS NULL OR name ILIKE '%' || @q || '%' OR description ILIKE '%' || @q || '%' OR slug ILIKE '%' || @q || '%')
               AND (@category::text IS NULL OR category = @category)
               AND (@tag::text IS NULL OR tags @> ARRAY[@tag])
               AND (@kind::text IS NULL OR kind = @kind)
               AND (@featured::boolean IS NULL OR featured = @featured)
               AND (@afterId::uuid IS NULL OR (install_count, id) < (@afterInstalls, @afterId))
             ORDER BY install_count DESC, id DESC
             LIMIT @take
            """, new { q = EscapeLike(q), category, tag, kind, featured, afterInstalls, afterId, take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => $"{r.InstallCount}|{r.Id}");
        return TypedResults.Ok(new Page<Template>(page.Items.Select(r => r.ToTemplate(withManifest: false)).ToList(), page.NextCursor));
    }

    private static string? EscapeLike(string? q) =>
        string.IsNullOrWhiteSpace(q) ? null : q.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);

    internal static async Task<IResult> Get(Guid templateId, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var row = await Find(db, templateId, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToTemplate());
    }

    internal static async Task<TemplateRow> Find(RequestDb db, Guid templateId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<TemplateRow>($"SELECT {TemplateRules.Columns} FROM connector_templates WHERE id = @templateId", new { templateId }, ct)
        ?? throw Problems.NotFound("The template");

    /// <summary>Installs a published template into a workspace with that workspace's own credential.</summary>
    private static async Task<IResult> Install(Guid templateId, InstallTemplateRequest body, RequestDb db, KeyRing keys, HttpContext http, CancellationToken ct)
    {
        await WorkspaceAccessFilter.EnterAsync(http, db, body.WorkspaceId, ct);
        var template = await Find(db, templateId, ct);
        if (template.Status != "published")
        {
            throw Problems.NotFound("The template");
        }
        db.RequireRole("admin", "install templates");
        if (body.CredentialId is not null && body.Credentials is not null)
        {
            throw Problems.Invalid("Send either credential_id or credentials, not both.", "/credentials");
        }
        var fields = template.ToTemplate().CredentialFields;
        Dictionary<string, string>? secret = null;
        if (body.Credentials is not null)
        {
            secret = CredentialsApi.ValidateSecret(body.Credentials, "credentials");
            var unknown = secret.Keys.Except(fields.Select(f => f.Name)).ToList();
            if (unknown.Count > 0)
            {
                throw Problems.Invalid($"The template has no credential field named {string.Join(", ", unknown)}.", "/credentials");
            }
        }
        if (body.CredentialId is null)
        {
            var missing = fields.Where(f => f.Required && (secret is null || !secret.ContainsKey(f.Name))).Select(f => f.Name).ToList();
            if (missing.Count > 0)
            {
                throw Problems.Invalid($"The template needs these credential fields: {string.Join(", ", missing)}.", "/credentials");
            }
        }
        var name = body.Name is null ? template.Name : Validate.Name(body.Name);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var credentialId = body.CredentialId;
        if (secret is not null)
        {
            var credential = await CredentialsApi.InsertAsync(db, keys, $"{name} credential", template.AuthType is "none" ? "custom" : template.AuthType, secret, null, ct);
            await Audit.WriteAsync(db, "credential.created", "credential", credential.Id.ToString(), new { name = credential.Name, fields = credential.SecretFields }, ct);
            credentialId = credential.Id;
        }
        var connector = await ConnectorsApi.InsertAsync(db, new ConnectorsApi.NewConnector(name, template.Description, template.Manifest,
            JsonColumns.Object(body.Config, "config"), credentialId, true, "{}", "{}",
            ConnectorsApi.Schedule(body.SyncFrequency ?? "manual", body.SyncTimezone), false, template.Id, template.Version), ct);
        await db.ExecuteAsync("SELECT record_template_install(@templateId)", new { templateId }, ct);
        await Audit.WriteAsync(db, "template.installed", "template", templateId.ToString(), new { connector_id = connector.Id, version = template.Version }, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/connectors/{connector.Id}", connector, ct);
    }

    internal static async Task<IResult> ListCommunity(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<TemplateRow>(
            $"SELECT {TemplateRules.Columns} FROM connector_templates WHERE workspace_id = app_workspace_id() AND (@after::uuid IS NULL OR id < @after) ORDER BY id DESC LIMIT @take",
            new { after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Template>(page.Items.Select(r => r.ToTemplate(withManifest: false)).ToList(), page.NextCursor));
    }

    private static async Task<IResult> CreateCommunity(TemplateWriteRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("admin", "write community templates");
        var t = TemplateRules.Check(body);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var row = await db.QuerySingleOrDefaultAsync<TemplateRow>(
            $"""
            INSERT INTO connector_templates (id, workspace_id, kind, slug, name, description, category, tags, manifest, credential_fields, auth_type, created_by)
            VALUES (@id, app_workspace_id(), 'community', @Slug, @Name, @Description, @Category, @Tags, @Manifest::jsonb, @CredentialFields::jsonb, @AuthType, app_user_id())
            RETURNING {TemplateRules.Columns}
            """, new { id = Guid.CreateVersion7(), t.Slug, t.Name, t.Description, t.Category, t.Tags, t.Manifest, t.CredentialFields, t.AuthType }, ct);
        await Audit.WriteAsync(db, "template.created", "template", row!.Id.ToString(), new { slug = t.Slug, kind = "community" }, ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/templates/{row.Id}", row.ToTemplate(), ct);
    }

    private static async Task<IResult> UpdateCommunity(Guid templateId, TemplateUpdateRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var existing = await FindCommunity(db, templateId, ct);
        db.RequireRole("admin", "edit community templates");
        if (body.Status is not null and not "draft" and not "archived")
        {
            throw Problems.Invalid("A workspace can set its template to draft or archived; platform admins publish it.", "/status");
        }
        // Editing a published (or rejected) community template sends it back to draft: changes are reviewed again.
        var status = body.Status ?? (existing.Status == "draft" ? null : "draft");
        var row = await UpdateAsync(db, existing, body with { Status = status }, ETags.IfMatch(http.Request), ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToTemplate());
    }

    private static async Task<IResult> DeleteCommunity(Guid templateId, RequestDb db, CancellationToken ct)
    {
        var existing = await FindCommunity(db, templateId, ct);
        db.RequireRole("admin", "delete community templates");
        if (existing.Status != "draft")
        {
            throw Problems.Conflict("Only draft templates can be deleted; archive a published one instead.");
        }
        await db.ExecuteAsync("DELETE FROM connector_templates WHERE id = @templateId", new { templateId }, ct);
        await Audit.WriteAsync(db, "template.deleted", "template", templateId.ToString(), null, ct);
        return TypedResults.NoContent();
    }

    private static async Task<TemplateRow> FindCommunity(RequestDb db, Guid templateId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<TemplateRow>($"SELECT {TemplateRules.Columns} FROM connector_templates WHERE id = @templateId AND workspace_id = app_workspace_id()", new { templateId }, ct)
        ?? throw Problems.NotFound("The template");

    /// <summary>Applies an edit; changing the manifest or credential fields of a published template bumps its version.</summary>
    internal static async Task<TemplateRow> UpdateAsync(RequestDb db, TemplateRow existing, TemplateUpdateRequest body, long[]? ifMatch, CancellationToken ct, bool platform = false)
    {
        var row = await db.QuerySingleOrDefaultAsync<TemplateRow>(
            $"""
            UPDATE connector_templates SET
                name = coalesce(@name, name),
                description = coalesce(@description, description),
                category = coalesce(@category, category),
                tags = coalesce(@tags, tags),
                manifest = coalesce(@manifest::jsonb, manifest),
                credential_fields = coalesce(@fields::jsonb, credential_fields),
                auth_type = coalesce(@authType, auth_type),
                status = coalesce(@status, status),
                featured = CASE WHEN coalesce(@status, status) = 'published' THEN featured ELSE false END,
                version = CASE WHEN (@manifest::jsonb IS NOT NULL AND @manifest::jsonb <> manifest) OR (@fields::jsonb IS NOT NULL AND @fields::jsonb <> credential_fields)
                               THEN version + 1 ELSE version END
             WHERE id = @id AND (@ifMatch::bigint[] IS NULL OR xmin::text::bigint = ANY(@ifMatch))
            RETURNING {TemplateRules.Columns}
            """,
            new
            {
                id = existing.Id,
                name = body.Name is null ? null : Validate.Name(body.Name),
                description = body.Description is null ? null : Validate.Text(body.Description, "description", 4000),
                category = body.Category is null ? null : TemplateRules.Category(body.Category),
                tags = body.Tags is null ? null : TemplateRules.Tags(body.Tags),
                manifest = body.Manifest is null ? null : ConnectorsApi.ValidManifest(body.Manifest),
                fields = body.CredentialFields is null ? null : TemplateRules.Fields(body.CredentialFields),
                authType = body.AuthType is null ? null : TemplateRules.AuthType(body.AuthType),
                status = body.Status,
                ifMatch,
            }, ct) ?? throw Problems.PreconditionFailed("The template changed since you read it: GET it again and retry with the new ETag.");
        await Audit.WriteAsync(db, "template.updated", "template", existing.Id.ToString(), new { version = row.Version, status = row.Status }, ct, platform);
        return row;
    }
}
