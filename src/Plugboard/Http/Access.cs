using Plugboard.Data;

namespace Plugboard.Http;

public static class Roles
{
    public static readonly string[] Workspace = ["viewer", "member", "admin", "owner"];
    public static readonly string[] Platform = ["developer", "admin", "owner"];

    public static bool AtLeast(string? role, string minimum) =>
        role is not null && Array.IndexOf(Workspace, role) >= Array.IndexOf(Workspace, minimum);

    public static bool PlatformAtLeast(string? role, string minimum) =>
        role is not null && Array.IndexOf(Platform, role) >= Array.IndexOf(Platform, minimum);

    /// <summary>The lower of a role and an optional cap (a capped key's effective role).</summary>
    public static string Capped(string role, string? cap) => cap is not null && !AtLeast(cap, role) ? cap : role;

    public static string ValidWorkspaceRole(string? role, string field = "role") =>
        role is not null && Workspace.Contains(role) ? role
        : throw Problems.Invalid($"{field} must be one of: {string.Join(", ", Workspace)}.", "/" + field);
}

public static class Access
{
    /// <summary>Throws 403 unless the caller's role in the current workspace is at least <paramref name="minimum"/>.</summary>
    public static void RequireRole(this RequestDb db, string minimum, string action)
    {
        if (!Roles.AtLeast(db.WorkspaceRole, minimum))
        {
            throw Problems.Forbidden($"To {action} you need the {minimum} role in this workspace; you have {db.WorkspaceRole}.");
        }
    }

    public static void RequirePlatformRole(this RequestDb db, string minimum, string action)
    {
        if (!Roles.PlatformAtLeast(db.PlatformRole, minimum))
        {
            throw Problems.Forbidden($"To {action} you need the platform {minimum} role.");
        }
    }
}
