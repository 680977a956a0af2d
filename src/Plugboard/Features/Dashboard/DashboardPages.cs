using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Web;
using Microsoft.AspNetCore.Mvc;
using Plugboard.Data;
using Plugboard.Features.Analytics;
using Plugboard.Features.Connectors;
using Plugboard.Features.Credentials;
using Plugboard.Features.Dashboard.Pages;
using Plugboard.Features.Documents;
using Plugboard.Features.Executions;
using Plugboard.Features.Search;
using Plugboard.Features.Syncs;
using Plugboard.Features.Templates;
using Plugboard.Features.Webhooks;
using Plugboard.Features.Workspaces;
using Plugboard.Http;
using Plugboard.Security;

namespace Plugboard.Features.Dashboard;

/// <summary>
/// The web dashboard, served at / by the same process as the API. Pages are rendered on the server (Razor components)
/// from the API's own handlers, called in-process under the caller's row-level security context; everything a page
/// changes goes through the JSON API itself, from the page's script, with the session's CSRF token.
/// </summary>
public static class DashboardPages
{
    public static void Map(WebApplication app)
    {
        DashboardAssets.Map(app);
        var ui = app.MapGroup("").ExcludeFromDescription().AddEndpointFilter<DashboardFilter>();
        ui.MapGet("/sign-in", (HttpContext http, IConfiguration configuration, string? next) =>
            http.User.Identity?.IsAuthenticated == true ? Results.Redirect("/") : SignInPage(configuration, null, next, 200));
        ui.MapPost("/sign-in", SignIn);
        if (app.Services.GetService<OidcSignInSettings>() is not null)
        {
            DashboardOidc.Map(ui);
        }
        ui.MapPost("/sign-out", SignOut);
        ui.MapGet("/", Home);
        ui.MapGet("/switch", async (HttpContext http, RequestDb db, string? workspace, string? cursor, CancellationToken ct) =>
        {
            if (workspace is { Length: > 0 })
            {
                return Results.Redirect($"/w/{Uri.EscapeDataString(workspace)}/connectors");
            }
            if (http.User.Identity?.IsAuthenticated != true)
            {
                return Results.Redirect("/sign-in?next=%2Fswitch");
            }
            var workspaces = Value<Page<Workspace>>(await WorkspacesApi.List(db, null, NullIfEmpty(cursor), ct));
            var frame = new DashboardFrame("Your workspaces", "", null, null, null, DashboardSessions.Csrf(http) ?? "");
            return Render<WorkspacesPage>(new() { ["Frame"] = frame, ["Workspaces"] = workspaces });
        });

        ui.MapGet("/platform", async (HttpContext http, RequestDb db, Plugboard.Jobs.JobQueue queue, CancellationToken ct) =>
        {
            var stats = Value<Plugboard.Jobs.JobStats>(await Features.Jobs.JobsAdminApi.Stats(db, queue, ct));
            var workers = Value<IReadOnlyList<Features.Jobs.JobsAdminApi.WorkerHeartbeat>>(await Features.Jobs.JobsAdminApi.Workers(db, ct));
            var dead = Value<Page<Plugboard.Jobs.DeadJob>>(await Features.Jobs.JobsAdminApi.ListDead(db, queue, 50, null, ct));
            var frame = new DashboardFrame("Platform", "platform", null, null, null, DashboardSessions.Csrf(http) ?? "", db.PlatformRole);
            return Render<PlatformPage>(new() { ["Frame"] = frame, ["Stats"] = stats, ["Workers"] = workers, ["Dead"] = dead });
        }).AddEndpointFilter<SignedInFilter>();

        ui.MapGet("/platform/templates", async (HttpContext http, RequestDb db, string? status, string? cursor, CancellationToken ct) =>
        {
            db.RequirePlatformRole("admin", "moderate templates");
            status = NullIfEmpty(status) ?? "draft";
            var templates = Value<Page<Template>>(await Admin.AdminApi.ListTemplates(db, status, "community", 50, NullIfEmpty(cursor), ct));
            var frame = new DashboardFrame("Template moderation", "platform", null, null, null, DashboardSessions.Csrf(http) ?? "", db.PlatformRole);
            return Render<ModerationPage>(new() { ["Frame"] = frame, ["Templates"] = templates, ["Status"] = status });
        }).AddEndpointFilter<SignedInFilter>();
        ui.MapGet("/platform/templates/{templateId:guid}", async (Guid templateId, HttpContext http, RequestDb db, CancellationToken ct) =>
        {
            db.RequirePlatformRole("admin", "review templates");
            var template = (await TemplatesApi.Find(db, templateId, ct)).ToTemplate();
            var frame = new DashboardFrame($"Review: {template.Name}", "platform", null, null, null, DashboardSessions.Csrf(http) ?? "", db.PlatformRole);
            return Render<TemplateReviewPage>(new() { ["Frame"] = frame, ["Template"] = template, ["Yaml"] = ManifestYaml(template.Manifest) });
        }).AddEndpointFilter<SignedInFilter>();

        var workspace = ui.MapGroup("/w/{workspaceId}")
            .AddEndpointFilter<SignedInFilter>().AddEndpointFilter<WorkspaceAccessFilter>().AddEndpointFilter<CommitOnSuccessFilter>();
        workspace.MapGet("", (string workspaceId) => Results.Redirect($"/w/{Uri.EscapeDataString(workspaceId)}/connectors"));
        workspace.MapGet("/connectors", async (RequestDb db, HttpContext http, string? cursor, CancellationToken ct) =>
        {
            var frame = await FrameAsync(db, http, "Connectors", "connectors", ct);
            var connectors = await ConnectorsApi.ListHealthAsync(db, cursor, ct);
            return Render<ConnectorsPage>(new() { ["Frame"] = frame, ["Connectors"] = connectors });
        });
        workspace.MapGet("/connectors/{connectorId:guid}", async (Guid connectorId, RequestDb db, OAuthSettings urls, HttpContext http, CancellationToken ct) =>
        {
            var connector = Value<Connector>(await ConnectorsApi.Get(connectorId, db, http, ct));
            http.Response.Headers.ETag = default; // the API's row version, not this page's
            var executions = Value<Page<Execution>>(await ExecutionsApi.ListAsync(db, connectorId, null, null, null, null, 10, null, ct));
            var frame = await FrameAsync(db, http, connector.Name, "connectors", ct);
            // Back from connecting an account: the OAuth callback's outcome (GET …/credentials/oauth/{id} has it too).
            var query = http.Request.Query;
            var connected = query["oauth_id"].Count > 0 ? (query["status"].ToString() == "completed" ? "completed" : $"failed: {query["error"]}") : null;
            return Render<ConnectorPage>(new()
            {
                ["Frame"] = frame,
                ["Connector"] = connector,
                ["Executions"] = executions,
                ["Connected"] = connected,
                ["RedirectUri"] = urls.RedirectUri(http.Request),
            });
        });
        workspace.MapGet("/connectors/{connectorId:guid}/runs/{executionId:guid}", async (Guid connectorId, Guid executionId, RequestDb db, HttpContext http, CancellationToken ct) =>
        {
            var (execution, workspaceName, connectorName) = await ExecutionsApi.GetNamedAsync(connectorId, executionId, db, ct);
            var frame = Frame(db, http, $"Run {executionId.ToString()[^12..]}", "runs", workspaceName);
            return Render<ExecutionPage>(new() { ["Frame"] = frame, ["ConnectorId"] = connectorId, ["ConnectorName"] = connectorName, ["Execution"] = execution });
        });
        workspace.MapGet("/connectors/{connectorId:guid}/syncs", async (Guid connectorId, RequestDb db, HttpContext http, string? cursor, CancellationToken ct) =>
        {
            var syncs = Value<Page<SyncLog>>(await SyncsApi.List(connectorId, db, null, null, 20, NullIfEmpty(cursor), ct));
            var (frame, connectorName) = await FrameWithConnectorAsync(db, http, "Syncs", "connectors", connectorId, ct);
            return Render<SyncsPage>(new() { ["Frame"] = frame with { Title = $"Syncs of {connectorName}" }, ["ConnectorId"] = connectorId, ["ConnectorName"] = connectorName, ["Syncs"] = syncs });
        });
        workspace.MapGet("/connectors/{connectorId:guid}/records", async (Guid connectorId, RequestDb db, HttpContext http, string? action, string? cursor, CancellationToken ct) =>
        {
            action = NullIfEmpty(action);
            cursor = NullIfEmpty(cursor);
            var records = Value<Syncs.RecordsPage>(await RecordsApi.List(connectorId, db, cursor, action, 50, ct));
            var (frame, connectorName) = await FrameWithConnectorAsync(db, http, "Records", "connectors", connectorId, ct);
            return Render<RecordsFeedPage>(new()
            {
                ["Frame"] = frame with { Title = $"Records of {connectorName}" },
                ["ConnectorId"] = connectorId,
                ["ConnectorName"] = connectorName,
                ["Records"] = records,
                ["Action"] = action,
                ["Cursor"] = cursor,
            });
        });
        workspace.MapGet("/connectors/{connectorId:guid}/webhook/events", async (Guid connectorId, RequestDb db, HttpContext http, string? cursor, CancellationToken ct) =>
        {
            var events = Value<Page<WebhookEvent>>(await WebhooksApi.List(connectorId, db, null, null, null, null, null, null, NullIfEmpty(cursor), ct));
            var (frame, connectorName) = await FrameWithConnectorAsync(db, http, "Webhook events", "connectors", connectorId, ct);
            return Render<WebhookEventsPage>(new()
            {
                ["Frame"] = frame with { Title = $"Webhook events of {connectorName}" },
                ["ConnectorId"] = connectorId,
                ["ConnectorName"] = connectorName,
                ["Events"] = events,
            });
        });
        workspace.MapGet("/runs", async (RequestDb db, HttpContext http, string? status, string? trigger, [FromQuery(Name = "connector_id")] string? connector,
            string? cursor, CancellationToken ct) =>
        {
            // An empty filter field of the form means "any".
            status = NullIfEmpty(status);
            trigger = NullIfEmpty(trigger);
            var connectorId = ConnectorFilter(connector);
            var executions = Value<Page<Execution>>(await ExecutionsApi.ListAsync(db, connectorId, status, trigger, null, null, null, NullIfEmpty(cursor), ct));
            var names = await ConnectorNamesAsync(db, executions.Items.Select(e => e.ConnectorId), ct);
            var frame = await FrameAsync(db, http, "Runs", "runs", ct);
            return Render<RunsPage>(new()
            {
                ["Frame"] = frame,
                ["Executions"] = executions,
                ["ConnectorNames"] = names,
                ["Status"] = status,
                ["Trigger"] = trigger,
                ["ConnectorId"] = connectorId,
            });
        });
        workspace.MapGet("/analytics", async (RequestDb db, HttpContext http, int? days, [FromQuery(Name = "connector_id")] string? connector, CancellationToken ct) =>
        {
            var connectorId = ConnectorFilter(connector);
            var data = Value<Analytics.Analytics>(await AnalyticsApi.Get(db, days, connectorId, ct));
            var names = await ConnectorNamesAsync(db, connectorId is { } c ? [c] : [], ct);
            var frame = await FrameAsync(db, http, "Analytics", "analytics", ct);
            return Render<AnalyticsPage>(new() { ["Frame"] = frame, ["Data"] = data, ["ConnectorNames"] = names });
        });
        workspace.MapGet("/marketplace", async (RequestDb db, HttpContext http, string? q, string? kind, string? category, bool? featured, string? cursor, CancellationToken ct) =>
        {
            q = NullIfEmpty(q);
            kind = NullIfEmpty(kind);
            category = NullIfEmpty(category);
            var templates = Value<Page<Template>>(await TemplatesApi.Search(db, q, category, null, kind, featured, null, NullIfEmpty(cursor), ct));
            var categories = await db.QueryAsync<string>("SELECT DISTINCT category FROM connector_templates WHERE status = 'published' AND category <> '' ORDER BY 1 LIMIT 100", null, ct);
            var frame = await FrameAsync(db, http, "Marketplace", "marketplace", ct);
            return Render<MarketplacePage>(new()
            {
                ["Frame"] = frame,
                ["Templates"] = templates,
                ["Query"] = q,
                ["Kind"] = kind,
                ["Category"] = category,
                ["Categories"] = categories,
                ["Featured"] = featured,
            });
        });
        workspace.MapGet("/marketplace/{templateId:guid}", async (Guid templateId, RequestDb db, OAuthSettings urls, HttpContext http, CancellationToken ct) =>
        {
            var template = (await TemplatesApi.Find(db, templateId, ct)).ToTemplate();
            var frame = await FrameAsync(db, http, template.Name, "marketplace", ct);
            return Render<TemplatePage>(new() { ["Frame"] = frame, ["Template"] = template, ["RedirectUri"] = urls.RedirectUri(http.Request) });
        });
        workspace.MapGet("/templates", async (RequestDb db, HttpContext http, string? cursor, CancellationToken ct) =>
        {
            var templates = Value<Page<Template>>(await TemplatesApi.ListCommunity(db, 50, NullIfEmpty(cursor), ct));
            var frame = await FrameAsync(db, http, "Your templates", "marketplace", ct);
            return Render<TemplatesPage>(new() { ["Frame"] = frame, ["Templates"] = templates });
        });
        workspace.MapGet("/studio", async (RequestDb db, HttpContext http, [FromQuery(Name = "connector_id")] string? connector, CancellationToken ct) =>
        {
            var connectorId = ConnectorFilter(connector);
            var opened = connectorId is { } id ? Value<Connector>(await ConnectorsApi.Get(id, db, http, ct)) : null;
            http.Response.Headers.ETag = default;
            var names = await ConnectorNamesAsync(db, connectorId is { } c ? [c] : [], ct);
            var frame = await FrameAsync(db, http, opened is null ? "Manifest studio" : $"Studio: {opened.Name}", "studio", ct);
            var yaml = opened?.Manifest is { ValueKind: JsonValueKind.Object } m && m.EnumerateObject().Any() ? ManifestYaml(m) : StarterManifest;
            return Render<StudioPage>(new() { ["Frame"] = frame, ["Connector"] = opened, ["Yaml"] = yaml, ["Connectors"] = names });
        });
        workspace.MapGet("/uploads", async (RequestDb db, HttpContext http, CancellationToken ct) =>
        {
            var batches = Value<Page<Batch>>(await BatchesApi.List(db, null, 20, null, ct));
            var frame = await FrameAsync(db, http, "Uploads", "uploads", ct);
            return Render<UploadsPage>(new() { ["Frame"] = frame, ["Batches"] = batches });
        });
        workspace.MapGet("/search", async (RequestDb db, HttpContext http, DocumentPipelineOptions pipeline, string? q, string? source, string? cursor, CancellationToken ct) =>
        {
            q = NullIfEmpty(q);
            source = NullIfEmpty(source);
            var hits = q is null ? null
                : Value<Page<SearchHit>>(await SearchApi.Search(db, pipeline, q, null, source, null, null, null, null, null, NullIfEmpty(cursor), ct));
            var frame = await FrameAsync(db, http, "Search", "search", ct);
            return Render<SearchPage>(new() { ["Frame"] = frame, ["Hits"] = hits, ["Query"] = q, ["Source"] = source });
        });
    }

    private static string ManifestYaml(JsonElement? manifest) =>
        manifest is { } m ? Engine.Manifests.ManifestParser.ToYaml(JsonNode.Parse(m.GetRawText())) : "";

    /// <summary>What a new draft starts from: the smallest manifest that runs, to be edited.</summary>
    internal const string StarterManifest =
        """
        version: 1
        base_url: https://api.example.com
        auth:
          type: bearer
          token: "{{ credentials.token }}"
        steps:
          - id: list
            request:
              method: GET
              path: /items
            extract:
              items: "$.data[*]"
        output: "{{ steps.list.items }}"

        """;

    internal static IResult Render<TPage>(Dictionary<string, object?> parameters, int status = 200) where TPage : IComponent =>
        new PageResult<TPage>(parameters, status);

    /// <summary>
    /// A page rendered to one string and written at once. (ASP.NET Core's RazorComponentResult streams each text chunk
    /// to the response with its own asynchronous write, which cost a run's page more than all its queries together.)
    /// </summary>
    private sealed class PageResult<TPage>(Dictionary<string, object?> parameters, int status) : IResult where TPage : IComponent
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            await using var renderer = new HtmlRenderer(http.RequestServices, http.RequestServices.GetRequiredService<ILoggerFactory>());
            var html = await renderer.Dispatcher.InvokeAsync(async () =>
                (await renderer.RenderComponentAsync<TPage>(ParameterView.FromDictionary(parameters))).ToHtmlString());
            http.Response.StatusCode = status;
            http.Response.ContentType = "text/html; charset=utf-8";
            await http.Response.WriteAsync(html, http.RequestAborted);
        }
    }

    /// <summary>Names for a connector filter: the first 200 by name, and those the page shows.</summary>
    private static async Task<Dictionary<Guid, string>> ConnectorNamesAsync(RequestDb db, IEnumerable<Guid> shown, CancellationToken ct) =>
        (await db.QueryAsync<(Guid Id, string Name)>(
            "(SELECT id, name FROM connectors ORDER BY name, id LIMIT 200) UNION SELECT id, name FROM connectors WHERE id = ANY(@ids) ORDER BY 2, 1",
            new { ids = shown.Distinct().ToArray() }, ct)).ToDictionary(r => r.Id, r => r.Name);

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>A filter form's connector field: empty means any.</summary>
    private static Guid? ConnectorFilter(string? value) =>
        NullIfEmpty(value) is { } text
            ? Guid.TryParse(text, out var id) ? id : throw Problems.BadRequest("connector_id must be a connector's id.")
            : null;

    /// <summary>What an API handler answered (the handlers return typed results).</summary>
    private static T Value<T>(IResult result) =>
        result is IValueHttpResult<T> { Value: { } value } ? value : throw new InvalidOperationException($"The handler answered {result.GetType().Name}, not {typeof(T).Name}.");

    /// <summary>The frame of a page in the entered workspace: one short query for the workspace's name.</summary>
    internal static async Task<DashboardFrame> FrameAsync(RequestDb db, HttpContext http, string title, string section, CancellationToken ct) =>
        (await FrameWithConnectorAsync(db, http, title, section, null, ct)).Frame;

    /// <summary>The frame, and a connector's name in the same round trip (the run page shows which connector ran).</summary>
    private static async Task<(DashboardFrame Frame, string ConnectorName)> FrameWithConnectorAsync(RequestDb db, HttpContext http, string title, string section,
        Guid? connectorId, CancellationToken ct)
    {
        var names = await db.QuerySingleOrDefaultAsync<(string? Workspace, string? Connector)>(
            "SELECT (SELECT name FROM workspaces WHERE id = app_workspace_id()), (SELECT name FROM connectors WHERE id = @connectorId)", new { connectorId }, ct);
        return (Frame(db, http, title, section, names.Workspace), names.Connector ?? (connectorId is null ? "" : throw Problems.NotFound("The connector")));
    }

    private static DashboardFrame Frame(RequestDb db, HttpContext http, string title, string section, string? workspaceName) =>
        new(title, section, db.WorkspaceId, workspaceName ?? db.WorkspaceId, db.WorkspaceRole, DashboardSessions.Csrf(http) ?? "", db.PlatformRole);

    internal static IResult SignInPage(IConfiguration configuration, string? error, string? next, int status) =>
        Render<SignInPage>(new()
        {
            ["Error"] = error,
            ["Next"] = LocalPath(next),
            ["Hours"] = DashboardSessions.Lifetime(configuration).TotalHours,
            ["SingleSignOn"] = OidcSignInSettings.FromConfiguration(configuration)?.DisplayName,
        }, status);

    /// <summary>A path on this site to return to after signing in; anything else (another host, //host) is dropped.</summary>
    internal static string? LocalPath(string? next) =>
        next is { Length: > 1 and <= 2000 } && next[0] == '/' && next[1] is not '/' and not '\\' ? next : null;

    private static async Task<IResult> SignIn(HttpContext http, RequestDb db, IConfiguration configuration, CancellationToken ct)
    {
        // Login CSRF: a browser says where a form post comes from; another site's form cannot sign anyone in here.
        if (http.Request.Headers["Sec-Fetch-Site"].ToString() is "cross-site" or "same-site")
        {
            return SignInPage(configuration, "Sign in from this site's own sign-in page.", null, 403);
        }
        if (!http.Request.HasFormContentType)
        {
            return SignInPage(configuration, "Send the sign-in form.", null, 415);
        }
        var form = await http.Request.ReadFormAsync(ct);
        var next = form["next"].ToString();
        var key = form["api_key"].ToString().Trim();
        if (!Security.ApiKeys.LooksLikeKey(key))
        {
            return SignInPage(configuration, "That is not a Plugboard API key: keys start with pb_. Create one with `plugboard keys create`.", next, 401);
        }
        var token = DashboardSessions.NewToken();
        var expires = await db.QuerySingleOrDefaultAsync<DateTime?>("SELECT start_dashboard_session(@keyHash, @tokenHash, @lifetime)",
            new { keyHash = Security.ApiKeys.Hash(key), tokenHash = DashboardSessions.Hash(token), lifetime = DashboardSessions.Lifetime(configuration) }, ct);
        if (expires is null)
        {
            return SignInPage(configuration, "The API key is unknown, revoked or expired.", next, 401);
        }
        await db.CommitAsync(ct);
        DashboardSessions.SetCookie(http, token, new DateTimeOffset(DateTime.SpecifyKind(expires.Value, DateTimeKind.Utc)));
        return Results.Redirect(LocalPath(next) ?? "/");
    }

    private static async Task<IResult> SignOut(HttpContext http, RequestDb db, CancellationToken ct)
    {
        if (DashboardSessions.IsSession(http.User) && http.Request.Cookies[DashboardSessions.CookieName] is { } token)
        {
            await db.ExecuteAsync("SELECT end_dashboard_session(@tokenHash)", new { tokenHash = DashboardSessions.Hash(token) }, ct);
            await db.CommitAsync(ct);
        }
        DashboardSessions.ClearCookie(http);
        return Results.Redirect("/sign-in");
    }

    private static async Task<IResult> Home(HttpContext http, RequestDb db, CancellationToken ct)
    {
        if (http.User.Identity?.IsAuthenticated != true)
        {
            return Results.Redirect("/sign-in");
        }
        var workspaces = Value<Page<Workspace>>(await WorkspacesApi.List(db, 1, null, ct)).Items;
        return workspaces.Count > 0
            ? Results.Redirect($"/w/{Uri.EscapeDataString(workspaces[0].Id)}/connectors")
            : Render<ErrorPage>(new()
            {
                ["Frame"] = new DashboardFrame("No workspace", "", null, null, null, DashboardSessions.Csrf(http) ?? ""),
                ["Detail"] = "You are not a member of any workspace yet: create one with POST /v1/workspaces, or ask a workspace's owner to add you.",
            });
    }
}

/// <summary>
/// Every dashboard response: security headers (a Content-Security-Policy that allows only this site's own script and
/// stylesheet, no framing, no caching of private pages), and errors shown as a page rather than a JSON problem.
/// </summary>
public sealed class DashboardFilter : IEndpointFilter
{
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        Secure(http.Response.Headers);
        try
        {
            return await next(context);
        }
        catch (ProblemException problem)
        {
            var frame = new DashboardFrame(problem.Title, "", null, null, null, DashboardSessions.Csrf(http) ?? "");
            return DashboardPages.Render<ErrorPage>(new() { ["Frame"] = frame, ["Detail"] = problem.Detail ?? problem.Title }, problem.Status);
        }
    }

    public static void Secure(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "same-origin";
        headers.CacheControl = "no-store";
    }
}

/// <summary>Sends a visitor who is not signed in to the sign-in page, coming back here afterwards.</summary>
public sealed class SignedInFilter : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (http.User.Identity?.IsAuthenticated == true)
        {
            return next(context);
        }
        if (http.Request.Cookies.ContainsKey(DashboardSessions.CookieName))
        {
            DashboardSessions.ClearCookie(http); // it names a session that has ended
        }
        return ValueTask.FromResult<object?>(Results.Redirect("/sign-in?next=" + Uri.EscapeDataString(http.Request.Path + http.Request.QueryString)));
    }
}
