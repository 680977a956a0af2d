using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Http;

namespace Plugboard.Features.Templates;

/// <summary>
/// Loads the official templates in templates/*.yaml at start: new ones are inserted as published, changed ones
/// get a new version. Runs as the service role; a template with a literal secret stops the start-up.
/// </summary>
public static class OfficialTemplateLoader
{
    public sealed record TemplateFile(string Slug, string Name, string Description, string Category, string[] Tags, string AuthType,
        CredentialField[] CredentialFields, JsonNode Manifest);

    public static IReadOnlyList<TemplateFile> Read(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        var templates = new List<TemplateFile>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.yaml").Order(StringComparer.Ordinal))
        {
            JsonObject node;
            try
            {
                node = ManifestParser.ReadDocument(File.ReadAllText(path)) as JsonObject
                    ?? throw new InvalidOperationException($"{path}: a template file must be a YAML mapping.");
            }
            catch (FormatException ex)
            {
                throw new InvalidOperationException($"{path}: {ex.Message}", ex);
            }
            var body = node.Deserialize<TemplateWriteRequest>(ApiJson.Options)
                ?? throw new InvalidOperationException($"{path}: empty template.");
            var issues = LiteralSecretScanner.Scan(node["manifest"]);
            if (issues.Count > 0)
            {
                throw new InvalidOperationException($"{path}: {issues[0].Message} (at /manifest{issues[0].Pointer})");
            }
            var checkedBody = TemplateRules.Check(body);
            templates.Add(new TemplateFile(checkedBody.Slug, checkedBody.Name, checkedBody.Description, checkedBody.Category, checkedBody.Tags,
                checkedBody.AuthType, body.CredentialFields ?? [], node["manifest"]!));
        }
        return templates;
    }

    public static async Task<int> LoadAsync(Db db, string directory, CancellationToken ct)
    {
        var templates = Read(directory);
        await using var connection = await db.Service.OpenConnectionAsync(ct);
        var changed = 0;
        foreach (var t in templates)
        {
            changed += await connection.ExecuteAsync(new CommandDefinition(
                """
                INSERT INTO connector_templates (id, workspace_id, kind, slug, name, description, category, tags, status, manifest, credential_fields, auth_type, published_at)
                VALUES (@id, NULL, 'official', @Slug, @Name, @Description, @Category, @Tags, 'published', @manifest::jsonb, @fields::jsonb, @AuthType, now())
                ON CONFLICT (slug) WHERE workspace_id IS NULL DO UPDATE
                   SET name = excluded.name, description = excluded.description, category = excluded.category, tags = excluded.tags,
                       manifest = excluded.manifest, credential_fields = excluded.credential_fields, auth_type = excluded.auth_type,
                       version = connector_templates.version + 1
                 WHERE connector_templates.manifest IS DISTINCT FROM excluded.manifest
                    OR connector_templates.credential_fields IS DISTINCT FROM excluded.credential_fields
                    OR connector_templates.name IS DISTINCT FROM excluded.name
                    OR connector_templates.description IS DISTINCT FROM excluded.description
                    OR connector_templates.category IS DISTINCT FROM excluded.category
                    OR connector_templates.tags IS DISTINCT FROM excluded.tags
                    OR connector_templates.auth_type IS DISTINCT FROM excluded.auth_type
                """,
                new
                {
                    id = Guid.CreateVersion7(),
                    t.Slug,
                    t.Name,
                    t.Description,
                    t.Category,
                    t.Tags,
                    t.AuthType,
                    manifest = t.Manifest.ToJsonString(),
                    fields = JsonSerializer.Serialize(t.CredentialFields, ApiJson.Options),
                }, cancellationToken: ct));
        }
        return changed;
    }
}
