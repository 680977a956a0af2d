using Plugboard.Data;
using Plugboard.Security;

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
        var workspaceId = http.Request.RouteValues["workspaceId"] as string ?? "";
        var keyWorkspace = http.User.FindFirst(ApiKeyAuthenticationHandler.KeyWorkspaceClaim)?.Value;
        if (workspaceId.Length is 0 or > 64 || (keyWorkspace is not null && keyWorkspace != workspaceId))
        {
            throw Problems.NotFound("The workspace");
        }
        var db = http.RequestServices.GetRequiredService<RequestDb>();
        var role = await db.EnterWorkspaceAsync(workspaceId, http.User.FindFirst(ApiKeyAuthenticationHandler.KeyRoleClaim)?.Value, http.RequestAborted);
        if (role is null)
        {
            throw Problems.NotFound("The workspace");
        }
        return await next(context);
    }
}
