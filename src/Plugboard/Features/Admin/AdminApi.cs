using Plugboard.Data;
using Plugboard.Features.AuditLog;
using Plugboard.Features.Templates;
using Plugboard.Http;

namespace Plugboard.Features.Admin;

public sealed record FeatureTemplateRequest(bool Featured);

public sealed record RejectTemplateRequest(string Reason);

public sealed record PlatformUserRequest(string Email, string Role);

public sealed record PlatformUser(Guid UserId, string Email, string Role, DateTime CreatedAt, DateTime UpdatedAt);

/// <summary>
/// The platform team's API: developers write official templates; admins also moderate every template and
/// manage platform developers; the platform owner manages admins.
/// </summary>
public static class AdminApi
{
    public static void Map(RouteGroupBuilder v1)
    {
        var admin = v1.MapGroup("/admin").WithTags("Admin");
        admin.MapGet("/templates", ListTemplates).Produces<Page<Template>>();
        admin.MapPost("/templates", CreateOfficial).Produces<Template>(201);
        admin.MapPatch("/templates/{templateId:guid}", UpdateTemplate).Produces<Template>();
        admin.MapPost("/templates/{templateId:guid}/publish", (Guid templateId, RequestDb db, CancellationToken ct) => Moderate(db, templateId, "publish", ct)).Produces<Template>();
        admin.MapPost("/templates/{templateId:guid}/archive", (Guid templateId, RequestDb db, CancellationToken ct) => Moderate(db, templateId, "archive", ct)).Produces<Template>();
        admin.MapPost("/templates/{templateId:guid}/reject", Reject).Produces<Template>();
        admin.MapPost("/templates/{templateId:guid}/feature", Feature).Produces<Template>();
        admin.MapGet("/users", ListUsers).Produces<Page<PlatformUser>>();
        admin.MapPut("/users", SetUser).Produces<PlatformUser>();
        admin.MapDelete("/users/{userId:guid}", RemoveUser).Produces(204);
        admin.MapGet("/audit-log", AuditLogApi.ListPlatform).Produces<Page<AuditEntry>>();
    }

    internal static async Task<IResult> ListTemplates(RequestDb db, string? status, string? kind, int? limit, string? cursor, CancellationToken ct)
    {
        db.RequirePlatformRole("developer", "list all templates");
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<TemplateRow>(
            $"""
            SELECT {TemplateRules.Columns} FROM connector_templates
             WHERE (@status::text IS NULL OR status = @status) AND (@kind::text IS NULL OR kind = @kind)
               AND (@after::uuid IS NULL OR id < @after)
             ORDER BY id DESC LIMIT @take
            """, new { status, kind, after = Paging.AfterId(cursor), take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, r => r.Id);
        return TypedResults.Ok(new Page<Template>(page.Items.Select(r => r.ToTemplate(withManifest: false)).ToList(), page.NextCursor));
    }

    private static async Task<IResult> CreateOfficial(TemplateWriteRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequirePlatformRole("developer", "write official templates");
        var t = TemplateRules.Check(body);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var row = await db.QuerySingleOrDefaultAsync<TemplateRow>(
            $"""
            INSERT INTO connector_templates (id, workspace_id, kind, slug, name, description, category, tags, manifest, credential_fields, auth_type, created_by)
            VALUES (@id, NULL, 'official', @Slug, @Name, @Description, @Category, @Tags, @Manifest::jsonb, @CredentialFields::jsonb, @AuthType, app_user_id())
            RETURNING {TemplateRules.Columns}
            """, new { id = Guid.CreateVersion7(), t.Slug, t.Name, t.Description, t.Category, t.Tags, t.Manifest, t.CredentialFields, t.AuthType }, ct);
        await Audit.WriteAsync(db, "template.created", "template", row!.Id.ToString(), new { slug = t.Slug, kind = "official" }, ct, platform: true);
        return await Idempotency.CreatedAsync(http, db, $"/v1/templates/{row.Id}", row.ToTemplate(), ct);
    }

    private static async Task<IResult> UpdateTemplate(Guid templateId, TemplateUpdateRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequirePlatformRole("developer", "edit templates");
        var existing = await TemplatesApi.Find(db, templateId, ct);
        if (existing.Kind == "community" || body.Status is not null)
        {
            db.RequirePlatformRole("admin", existing.Kind == "community" ? "edit community templates" : "change a template's status");
        }
        if (body.Status is not null and not "draft" and not "published" and not "archived" and not "rejected")
        {
            throw Problems.Invalid("status must be draft, published, rejected or archived.", "/status");
        }
        var row = await TemplatesApi.UpdateAsync(db, existing, body, ETags.IfMatch(http.Request), ct, platform: true);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToTemplate());
    }

    private static async Task<IResult> Moderate(RequestDb db, Guid templateId, string action, CancellationToken ct, string? reason = null)
    {
        db.RequirePlatformRole("admin", $"{action} templates");
        await TemplatesApi.Find(db, templateId, ct);
        var status = action switch { "publish" => "published", "archive" => "archived", _ => "rejected" };
        var row = await db.QuerySingleOrDefaultAsync<TemplateRow>(
            $"""
            UPDATE connector_templates SET status = @status, rejection_reason = @reason,
                   published_at = CASE WHEN @status = 'published' THEN coalesce(published_at, now()) ELSE published_at END,
                   featured = CASE WHEN @status = 'published' THEN featured ELSE false END
             WHERE id = @templateId
            RETURNING {TemplateRules.Columns}
            """, new { templateId, status, reason }, ct);
        await Audit.WriteAsync(db, $"template.{status}", "template", templateId.ToString(), new { reason }, ct, platform: true);
        return TypedResults.Ok(row!.ToTemplate());
    }

    private static Task<IResult> Reject(Guid templateId, RejectTemplateRequest body, RequestDb db, CancellationToken ct) =>
        Moderate(db, templateId, "reject", ct, Validate.Name(body.Reason, "reason", 1000));

    private static async Task<IResult> Feature(Guid templateId, FeatureTemplateRequest body, RequestDb db, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "feature templates");
        var existing = await TemplatesApi.Find(db, templateId, ct);
        if (body.Featured && existing.Status != "published")
        {
            throw Problems.Conflict("Only published templates can be featured.");
        }
        var row = await db.QuerySingleOrDefaultAsync<TemplateRow>(
            $"UPDATE connector_templates SET featured = @featured WHERE id = @templateId RETURNING {TemplateRules.Columns}",
            new { templateId, featured = body.Featured }, ct);
        await Audit.WriteAsync(db, "template.featured", "template", templateId.ToString(), new { featured = body.Featured }, ct, platform: true);
        return TypedResults.Ok(row!.ToTemplate());
    }

    private const string UserColumns = "s.user_id, u.email, s.role, s.created_at, s.updated_at";

    private static async Task<IResult> ListUsers(RequestDb db, int? limit, string? cursor, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "list platform users");
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<PlatformUser>(
            $"SELECT {UserColumns} FROM saas_admin_users s JOIN users u ON u.id = s.user_id WHERE (@after::uuid IS NULL OR s.user_id > @after) ORDER BY s.user_id LIMIT @take",
            new { after = Paging.AfterId(cursor), take = take + 1 }, ct);
        return TypedResults.Ok(Paging.ToPage(rows, take, u => u.UserId));
    }

    /// <summary>Grants or changes a platform role; admins manage developers, the owner manages admins too.</summary>
    private static async Task<IResult> SetUser(PlatformUserRequest body, RequestDb db, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "manage platform users");
        var email = Validate.Email(body.Email);
        var role = Validate.OneOf(body.Role, Roles.Platform, "role");
        if (role != "developer")
        {
            db.RequirePlatformRole("owner", "grant platform admin or owner");
        }
        var userId = await db.QuerySingleOrDefaultAsync<Guid>("SELECT ensure_user(@email)", new { email }, ct);
        var current = await db.QuerySingleOrDefaultAsync<string?>("SELECT role FROM saas_admin_users WHERE user_id = @userId", new { userId }, ct);
        if (current is not null and not "developer")
        {
            db.RequirePlatformRole("owner", "change a platform admin or owner");
        }
        if (userId == db.UserId)
        {
            throw Problems.Conflict("You cannot change your own platform role.");
        }
        await db.ExecuteAsync(
            "INSERT INTO saas_admin_users (user_id, role) VALUES (@userId, @role) ON CONFLICT (user_id) DO UPDATE SET role = excluded.role",
            new { userId, role }, ct);
        await Audit.WriteAsync(db, "platform_user.set", "user", userId.ToString(), new { role }, ct, platform: true);
        return TypedResults.Ok(await db.QuerySingleOrDefaultAsync<PlatformUser>(
            $"SELECT {UserColumns} FROM saas_admin_users s JOIN users u ON u.id = s.user_id WHERE s.user_id = @userId", new { userId }, ct));
    }

    private static async Task<IResult> RemoveUser(Guid userId, RequestDb db, CancellationToken ct)
    {
        db.RequirePlatformRole("admin", "manage platform users");
        var current = await db.QuerySingleOrDefaultAsync<string?>("SELECT role FROM saas_admin_users WHERE user_id = @userId", new { userId }, ct)
            ?? throw Problems.NotFound("The platform user");
        if (current != "developer")
        {
            db.RequirePlatformRole("owner", "remove a platform admin or owner");
        }
        if (userId == db.UserId)
        {
            throw Problems.Conflict("You cannot remove your own platform role.");
        }
        await db.ExecuteAsync("DELETE FROM saas_admin_users WHERE user_id = @userId", new { userId }, ct);
        await Audit.WriteAsync(db, "platform_user.removed", "user", userId.ToString(), null, ct, platform: true);
        return TypedResults.NoContent();
    }
}
