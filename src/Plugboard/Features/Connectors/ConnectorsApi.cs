using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Engine.Manifests;
using Plugboard.Features.Syncs;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Connectors;

public sealed record CreateConnectorRequest(
    string Name,
    string? Description = null,
    JsonElement? Manifest = null,
    JsonElement? Config = null,
    Guid? CredentialId = null,
    bool? IsActive = null,
    JsonElement? Filters = null,
    JsonElement? Metadata = null,
    string? SyncFrequency = null,
    bool? WebhookActive = null,
    int? MaxConcurrency = null,
    string? SyncTimezone = null);

public sealed record UpdateConnectorRequest(
    string? Name = null,
    string? Description = null,
    JsonElement? Manifest = null,
    JsonElement? Config = null,
    Guid? CredentialId = null,
    bool? ClearCredential = null,
    bool? IsActive = null,
    JsonElement? Filters = null,
    JsonElement? Metadata = null,
    string? SyncFrequency = null,
    bool? WebhookActive = null,
    int? MaxConcurrency = null,
    string? SyncTimezone = null);

public sealed record ConnectorStats(long Executions, long Succeeded, long Failed, decimal? SuccessRate, decimal? AvgDurationMs, DateTime? LastRunAt);

public sealed record Connector(
    Guid Id, string Name, string Description, string ConnectorType, Guid? TemplateId, int? TemplateVersion,
    JsonElement Manifest, JsonElement Config, Guid? CredentialId, bool IsActive, JsonElement Filters, JsonElement Metadata,
    string SyncFrequency, string SyncTimezone, DateTime? NextSyncAt, DateTime? LastSyncAt, DateTime? SyncPausedAt, string? LastSyncStatus, string? WebhookUrl, bool WebhookActive,
    bool WebhookSecretSet, long WebhookFailedVerifications, int MaxConcurrency, int ErrorCount, string? LastError, DateTime? LastErrorAt, DateTime? CredentialsUpdatedAt,
    DateTime CreatedAt, DateTime UpdatedAt, string? LastExecutionStatus, DateTime? LastExecutionAt, ConnectorStats? Stats = null);

public static class ConnectorsApi
{
    public static void Map(RouteGroupBuilder workspace)
    {
        var connectors = workspace.MapGroup("/connectors").WithTags("Connectors");
        connectors.MapGet("", List).Produces<Page<Connector>>();
        connectors.MapGet("/{connectorId:guid}", Get).Produces<Connector>();
        connectors.MapPost("", Create).Produces<Connector>(201);
        connectors.MapPatch("/{connectorId:guid}", Update).Produces<Connector>();
        connectors.MapDelete("/{connectorId:guid}", Delete).Produces(204);
    }

    internal const string Columns =
        """
        id, name, description, connector_type, template_id, template_version, manifest::text AS manifest, config::text AS config,
        credential_id, is_active, filters::text AS filters, metadata::text AS metadata, sync_frequency, sync_timezone, next_sync_at, last_sync_at,
        sync_paused_at,
        (SELECT l.status FROM connector_sync_logs l WHERE l.workspace_id = connectors.workspace_id AND l.connector_id = connectors.id ORDER BY l.id DESC LIMIT 1)
            AS last_sync_status,
        webhook_url, webhook_active, webhook_secret_set,
        coalesce((SELECT f.failed_verifications FROM connector_webhook_failures f WHERE f.workspace_id = connectors.workspace_id AND f.connector_id = connectors.id), 0)
            AS webhook_failed_verifications,
        max_concurrency, error_count, last_error, last_error_at,
        credentials_updated_at, created_at, updated_at, row_version,
        (SELECT e.status FROM connector_executions e WHERE e.workspace_id = connectors.workspace_id AND e.connector_id = connectors.id ORDER BY e.created_at DESC LIMIT 1)
            AS last_execution_status,
        (SELECT e.created_at FROM connector_executions e WHERE e.workspace_id = connectors.workspace_id AND e.connector_id = connectors.id ORDER BY e.created_at DESC LIMIT 1)
            AS last_execution_at
        """;

    internal static async Task<IResult> List(RequestDb db, int? limit, string? cursor, [FromQuery(Name = "is_active")] bool? isActive, [FromQuery(Name = "template_id")] Guid? templateId, CancellationToken ct) =>
        TypedResults.Ok(await ListAsync(db, limit, cursor, isActive, templateId, Columns, ct));

    // The dashboard's list shows each connector's health, not its manifest or config: it does not read or parse them.
    private static readonly string HealthColumns = Columns.Replace("manifest::text AS manifest, config::text AS config", "'{}' AS manifest, '{}' AS config", StringComparison.Ordinal);

    /// <summary>A page of connectors for the dashboard's list: as the API's, with an empty manifest and config.</summary>
    internal static Task<Page<Connector>> ListHealthAsync(RequestDb db, string? cursor, CancellationToken ct) => ListAsync(db, null, cursor, null, null, HealthColumns, ct);

    private static async Task<Page<Connector>> ListAsync(RequestDb db, int? limit, string? cursor, bool? isActive, Guid? templateId, string columns, CancellationToken ct)
    {
        var take = Paging.Limit(limit);
        var rows = await db.QueryAsync<ConnectorRow>(
            $"""
            SELECT {columns} FROM connectors
             WHERE (@after::uuid IS NULL OR id < @after)
               AND (@isActive::boolean IS NULL OR is_active = @isActive)
               AND (@templateId::uuid IS NULL OR template_id = @templateId)
             ORDER BY id DESC LIMIT @take
            """, new { after = Paging.AfterId(cursor), isActive, templateId, take = take + 1 }, ct);
        var page = Paging.ToPage(rows, take, c => c.Id);
        return new Page<Connector>(page.Items.Select(r => r.ToConnector()).ToList(), page.NextCursor);
    }

    internal static async Task<IResult> Get(Guid connectorId, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var row = await Find(db, connectorId, ct);
        var stats = await db.QuerySingleOrDefaultAsync<ConnectorStats>(
            "SELECT executions, succeeded, failed, success_rate, avg_duration_ms, last_run_at FROM connector_execution_stats(@connectorId)", new { connectorId }, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToConnector() with { Stats = stats });
    }

    private static async Task<IResult> Create(CreateConnectorRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        db.RequireRole("admin", "create connectors");
        var name = Validate.Name(body.Name);
        var description = Validate.Text(body.Description, "description", 2000);
        var manifest = ValidManifest(body.Manifest, allowEmpty: true);
        var schedule = Schedule(body.SyncFrequency ?? "manual", body.SyncTimezone);
        if (await Idempotency.ReplayOrClaimAsync(http, db, ct) is { } replay)
        {
            return replay;
        }
        var connector = await InsertAsync(db, new NewConnector(name, description, manifest, JsonColumns.Object(body.Config, "config"), body.CredentialId,
            body.IsActive ?? true, JsonColumns.Object(body.Filters, "filters"), JsonColumns.Object(body.Metadata, "metadata"), schedule,
            body.WebhookActive ?? false, null, null, MaxConcurrency(body.MaxConcurrency) ?? 4), ct);
        return await Idempotency.CreatedAsync(http, db, $"/v1/workspaces/{db.WorkspaceId}/connectors/{connector.Id}", connector, ct);
    }

    internal sealed record NewConnector(string Name, string Description, string Manifest, string Config, Guid? CredentialId, bool IsActive,
        string Filters, string Metadata, SyncSchedule Schedule, bool WebhookActive, Guid? TemplateId, int? TemplateVersion, int MaxConcurrency = 4);

    /// <summary>Inserts a connector in the current workspace (also used by template installs) and audits it.</summary>
    internal static async Task<Connector> InsertAsync(RequestDb db, NewConnector c, CancellationToken ct)
    {
        CheckConfig(c.Manifest, c.Config);
        if (c.CredentialId is { } credentialId)
        {
            await EnsureCredentialAsync(db, credentialId, ct);
        }
        var id = Guid.CreateVersion7();
        var row = await db.QuerySingleOrDefaultAsync<ConnectorRow>(
            $"""
            INSERT INTO connectors (workspace_id, id, name, description, manifest, config, credential_id, is_active, filters, metadata,
                                    sync_frequency, sync_timezone, next_sync_at, webhook_active, template_id, template_version,
                                    credentials_updated_at, created_by, max_concurrency)
            VALUES (app_workspace_id(), @id, @Name, @Description, @Manifest::jsonb, @Config::jsonb, @CredentialId, @IsActive, @Filters::jsonb, @Metadata::jsonb,
                    @syncFrequency, @syncTimezone, @nextSyncAt,
                    @WebhookActive, @TemplateId, @TemplateVersion,
                    CASE WHEN @CredentialId::uuid IS NULL THEN NULL ELSE now() END, app_user_id(), @MaxConcurrency)
            RETURNING {Columns}
            """,
            new
            {
                id,
                c.Name,
                c.Description,
                c.Manifest,
                c.Config,
                c.CredentialId,
                c.IsActive,
                c.Filters,
                c.Metadata,
                syncFrequency = c.Schedule.Frequency,
                syncTimezone = c.Schedule.TimeZone,
                nextSyncAt = c.IsActive ? c.Schedule.Next(DateTimeOffset.UtcNow, null) : null,
                c.WebhookActive,
                c.TemplateId,
                c.TemplateVersion,
                c.MaxConcurrency,
            }, ct);
        await Audit.WriteAsync(db, "connector.created", "connector", id.ToString(), new { name = c.Name, template_id = c.TemplateId }, ct);
        return row!.ToConnector();
    }

    private static async Task<IResult> Update(Guid connectorId, UpdateConnectorRequest body, RequestDb db, HttpContext http, CancellationToken ct)
    {
        var existing = await Find(db, connectorId, ct);
        db.RequireRole("admin", "change connectors");
        var ifMatch = ETags.IfMatch(http.Request);
        var manifest = body.Manifest is null ? null : ValidManifest(body.Manifest, allowEmpty: true);
        var config = body.Config is null ? null : JsonColumns.Object(body.Config, "config");
        if (manifest is not null || config is not null)
        {
            CheckConfig(manifest ?? existing.Manifest, config ?? existing.Config);
        }
        if (body.CredentialId is { } credentialId)
        {
            await EnsureCredentialAsync(db, credentialId, ct);
        }
        // A new frequency or time zone is read with the other's current value; next_sync_at follows it at once (none while paused).
        var schedule = body.SyncFrequency is null && body.SyncTimezone is null ? null
            : Schedule(body.SyncFrequency ?? existing.SyncFrequency, body.SyncTimezone ?? existing.SyncTimezone);
        var row = await db.QuerySingleOrDefaultAsync<ConnectorRow>(
            $"""
            UPDATE connectors SET
                name = coalesce(@name, name),
                description = coalesce(@description, description),
                manifest = coalesce(@manifest::jsonb, manifest),
                config = coalesce(@config::jsonb, config),
                credential_id = CASE WHEN @clearCredential THEN NULL ELSE coalesce(@credentialId, credential_id) END,
                credentials_updated_at = CASE WHEN @credentialId::uuid IS NOT NULL THEN now() ELSE credentials_updated_at END,
                is_active = coalesce(@isActive, is_active),
                filters = coalesce(@filters::jsonb, filters),
                metadata = coalesce(@metadata::jsonb, metadata),
                sync_frequency = coalesce(@syncFrequency, sync_frequency),
                sync_timezone = coalesce(@syncTimezone, sync_timezone),
                next_sync_at = CASE WHEN NOT coalesce(@isActive, is_active) OR sync_paused_at IS NOT NULL THEN NULL
                                    WHEN @rescheduled THEN @nextSyncAt ELSE next_sync_at END,
                webhook_active = coalesce(@webhookActive, webhook_active),
                max_concurrency = coalesce(@maxConcurrency, max_concurrency)
             WHERE id = @connectorId AND (@ifMatch::bigint[] IS NULL OR row_version = ANY(@ifMatch))
            RETURNING {Columns}
            """,
            new
            {
                connectorId,
                name = body.Name is null ? null : Validate.Name(body.Name),
                description = body.Description is null ? null : Validate.Text(body.Description, "description", 2000),
                manifest,
                config,
                credentialId = body.CredentialId,
                clearCredential = body.ClearCredential == true,
                isActive = body.IsActive,
                filters = body.Filters is null ? null : JsonColumns.Object(body.Filters, "filters"),
                metadata = body.Metadata is null ? null : JsonColumns.Object(body.Metadata, "metadata"),
                syncFrequency = schedule?.Frequency,
                syncTimezone = schedule?.TimeZone,
                rescheduled = schedule is not null || body.IsActive == true,
                nextSyncAt = (schedule ?? Schedule(existing.SyncFrequency, existing.SyncTimezone)).Next(DateTimeOffset.UtcNow, existing.LastSyncAt is { } last ? new DateTimeOffset(last, TimeSpan.Zero) : null),
                webhookActive = body.WebhookActive,
                maxConcurrency = MaxConcurrency(body.MaxConcurrency),
                ifMatch,
            }, ct) ?? throw Problems.PreconditionFailed("The connector changed since you read it: GET it again and retry with the new ETag.");
        await Audit.WriteAsync(db, "connector.updated", "connector", connectorId.ToString(),
            new { changed = ChangedFields(body) }, ct);
        ETags.Set(http, row.RowVersion);
        return TypedResults.Ok(row.ToConnector());
    }

    private static async Task<IResult> Delete(Guid connectorId, RequestDb db, CancellationToken ct)
    {
        await Find(db, connectorId, ct);
        db.RequireRole("admin", "delete connectors");
        await db.ExecuteAsync("DELETE FROM connectors WHERE id = @connectorId", new { connectorId }, ct);
        await Audit.WriteAsync(db, "connector.deleted", "connector", connectorId.ToString(), null, ct);
        return TypedResults.NoContent();
    }

    internal static async Task<ConnectorRow> Find(RequestDb db, Guid connectorId, CancellationToken ct) =>
        await db.QuerySingleOrDefaultAsync<ConnectorRow>($"SELECT {Columns} FROM connectors WHERE id = @connectorId", new { connectorId }, ct)
        ?? throw Problems.NotFound("The connector");

    private static async Task EnsureCredentialAsync(RequestDb db, Guid credentialId, CancellationToken ct)
    {
        var exists = await db.QuerySingleOrDefaultAsync<bool>("SELECT EXISTS (SELECT 1 FROM workspace_api_credentials WHERE id = @credentialId)", new { credentialId }, ct);
        if (!exists)
        {
            throw Problems.Invalid("credential_id does not name a credential in this workspace.", "/credential_id");
        }
    }

    /// <summary>
    /// Every saved manifest is validated by the engine: literal secrets answer 422 literal-secret, anything else wrong
    /// 422 manifest-invalid, each problem with its JSON pointer. A connector may be saved without a manifest ({}) and
    /// get one later; it cannot run until then.
    /// </summary>
    internal static string ValidManifest(JsonElement? manifest, string field = "manifest", bool allowEmpty = false)
    {
        var text = JsonColumns.Object(manifest, field, 512 * 1024);
        var node = JsonColumns.Node(text);
        if (allowEmpty && node is System.Text.Json.Nodes.JsonObject { Count: 0 })
        {
            return text;
        }
        var secrets = LiteralSecretScanner.Scan(node);
        if (secrets.Count > 0)
        {
            throw ManifestProblem("literal-secret", "Literal secret in manifest", field, secrets);
        }
        var issues = ManifestParser.Parse(node).Issues;
        if (issues.Count > 0)
        {
            throw ManifestProblem("manifest-invalid", "Invalid manifest", field, issues);
        }
        return text;
    }

    /// <summary>
    /// A connector's config is checked against its manifest's <c>config:</c> when either is saved (create, update,
    /// install): required values present and of the declared type, no undeclared names. 422 config-invalid, with a
    /// pointer per problem, instead of a connector that fails every run.
    /// </summary>
    internal static void CheckConfig(string manifestJson, string configJson)
    {
        var parsed = ManifestParser.Parse(JsonColumns.Node(manifestJson));
        if (parsed.Manifest is null || JsonColumns.Node(configJson) is not System.Text.Json.Nodes.JsonObject config)
        {
            return; // no manifest yet (or an invalid one, refused elsewhere): nothing to check against
        }
        var issues = ManifestArguments.Check(parsed.Manifest.Config, config, "config", "config", refuseUndeclared: true);
        if (issues.Count > 0)
        {
            throw new ProblemException(422, "config-invalid", "Invalid config", $"{issues[0].Message} (at {issues[0].Pointer})",
                new Dictionary<string, object?> { ["errors"] = issues.Select(i => new { pointer = i.Pointer, message = i.Message }).ToList() });
        }
    }

    private static ProblemException ManifestProblem(string slug, string title, string field, IReadOnlyList<ManifestIssue> issues) =>
        new(422, slug, title, $"{issues[0].Message} (at /{field}{issues[0].Pointer})",
            new Dictionary<string, object?> { ["errors"] = issues.Select(i => new { pointer = $"/{field}{i.Pointer}", message = i.Message }).ToList() });

    internal static SyncSchedule Schedule(string frequency, string? timeZone) =>
        SyncSchedule.TryParse(frequency, timeZone, out var schedule, out var error) ? schedule
        : throw Problems.Invalid(error!, error!.StartsWith("sync_timezone", StringComparison.Ordinal) ? "/sync_timezone" : "/sync_frequency");

    private static int? MaxConcurrency(int? value) =>
        value is null or (>= 1 and <= 100) ? value : throw Problems.Invalid("max_concurrency must be between 1 and 100.", "/max_concurrency");

    private static string[] ChangedFields(UpdateConnectorRequest body) =>
        typeof(UpdateConnectorRequest).GetProperties().Where(p => p.GetValue(body) is not null).Select(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name)).ToArray();

    internal sealed record ConnectorRow(
        Guid Id, string Name, string Description, string ConnectorType, Guid? TemplateId, int? TemplateVersion, string Manifest, string Config,
        Guid? CredentialId, bool IsActive, string Filters, string Metadata, string SyncFrequency, string SyncTimezone, DateTime? NextSyncAt, DateTime? LastSyncAt,
        DateTime? SyncPausedAt, string? LastSyncStatus, string? WebhookUrl, bool WebhookActive, bool WebhookSecretSet, long WebhookFailedVerifications, int MaxConcurrency, int ErrorCount, string? LastError,
        DateTime? LastErrorAt, DateTime? CredentialsUpdatedAt, DateTime CreatedAt, DateTime UpdatedAt, long RowVersion, string? LastExecutionStatus, DateTime? LastExecutionAt)
    {
        public Connector ToConnector() => new(Id, Name, Description, ConnectorType, TemplateId, TemplateVersion, JsonColumns.Element(Manifest),
            JsonColumns.Element(Config), CredentialId, IsActive, JsonColumns.Element(Filters), JsonColumns.Element(Metadata), SyncFrequency, SyncTimezone, NextSyncAt,
            LastSyncAt, SyncPausedAt, LastSyncStatus, WebhookUrl, WebhookActive, WebhookSecretSet, WebhookFailedVerifications, MaxConcurrency, ErrorCount, LastError, LastErrorAt, CredentialsUpdatedAt, CreatedAt, UpdatedAt,
            LastExecutionStatus, LastExecutionAt);
    }
}
