using Plugboard.Http;

namespace Plugboard.Features.Dashboard;

/// <summary>What every dashboard page's frame shows: the entered workspace's name, the caller's role in it, and the
/// session's CSRF token for forms and scripts.</summary>
public sealed record DashboardFrame(string Title, string Section, string? WorkspaceId, string? WorkspaceName, string? Role, string Csrf, string? PlatformRole = null)
{
    /// <summary>Platform admins (and owners) also see the platform page: the job queue and the workers.</summary>
    public bool PlatformAdmin => Roles.PlatformAtLeast(PlatformRole, "admin");


    /// <summary>Whether the caller's role allows an action that needs <paramref name="minimum"/>: edit controls show only then
    /// (the API refuses anyway).</summary>
    public bool Can(string minimum) => Roles.AtLeast(Role, minimum);

    public string Path(string rest) => $"/w/{Uri.EscapeDataString(WorkspaceId ?? "")}{rest}";

    public string Api(string rest) => $"/v1/workspaces/{Uri.EscapeDataString(WorkspaceId ?? "")}{rest}";
}
