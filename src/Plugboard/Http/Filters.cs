using Plugboard.Data;

namespace Plugboard.Http;

/// <summary>Commits the request's transaction when the handler answered with a success status.</summary>
public sealed class CommitOnSuccessFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var result = await next(context);
        var status = result is IStatusCodeHttpResult { StatusCode: { } code } ? code : context.HttpContext.Response.StatusCode;
        if (status < 400)
        {
            await context.HttpContext.RequestServices.GetRequiredService<RequestDb>().CommitAsync(context.HttpContext.RequestAborted);
        }
        return result;
    }
}

/// <summary>
/// Enters the workspace named by the route: 404 when the caller is not a member (or the key is confined to
/// another workspace), so a workspace's existence is never revealed.
/// </summary>
public sealed class WorkspaceAccessFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        await EnterAsync(http, http.RequestServices.GetRequiredService<RequestDb>(), http.Request.RouteValues["workspaceId"] as string, http.RequestAborted);
        return await next(context);
    }

    /// <summary>
    /// Enters a workspace for the caller: 404 unless they are a member and their key is not confined to another
    /// workspace. Used by the route filter and by endpoints that name the workspace in their body.
    /// </summary>
    public static async Task EnterAsync(HttpContext http, RequestDb db, string? workspaceId, CancellationToken ct)
    {
        var keyWorkspace = db.KeyWorkspaceId;
        if (workspaceId is not { Length: > 0 and <= 64 } || (keyWorkspace is not null && keyWorkspace != workspaceId)
            || await db.EnterWorkspaceAsync(workspaceId, ct) is null)
        {
            throw Problems.NotFound("The workspace");
        }
    }
}
