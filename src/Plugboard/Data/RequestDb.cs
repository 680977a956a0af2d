using System.Data;
using Dapper;
using Npgsql;

namespace Plugboard.Data;

/// <summary>
/// One transaction per request on the API role. The request context (user, platform role, workspace,
/// workspace role) is set with set_config(…, true) so it lives exactly as long as the transaction, and
/// row-level security reads it. Nothing is committed unless the request succeeds.
/// </summary>
public sealed class RequestDb(Db db) : IAsyncDisposable
{
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private bool _completed;
    private bool _released;
    private bool _statementFailed;

    public Guid? UserId { get; private set; }
    public Guid? KeyId { get; private set; }

    /// <summary>The workspace the caller's key is confined to (null for personal keys and OIDC sign-in).</summary>
    public string? KeyWorkspaceId { get; private set; }

    /// <summary>The role cap of the caller's key (null when uncapped).</summary>
    public string? KeyRole { get; private set; }

    public DateTime? KeyExpiresAt { get; private set; }

    /// <summary>Always null for a confined or capped key: such a key carries no platform role (the database says so).</summary>
    public string? PlatformRole { get; private set; }
    public string? WorkspaceId { get; private set; }
    public string? WorkspaceRole { get; private set; }

    /// <summary>The caller inside the entered workspace, for work after this request's transaction (<see cref="WorkspaceSession"/>).</summary>
    public WorkspaceContext Context => new(WorkspaceId ?? throw new InvalidOperationException("No workspace was entered."), UserId!.Value, WorkspaceRole!);

    private async Task<NpgsqlConnection> ConnectionAsync(CancellationToken ct)
    {
        if (_released)
        {
            throw new InvalidOperationException("This request released its database connection already.");
        }
        if (_connection is null)
        {
            var connection = await db.Api.OpenConnectionAsync(ct);
            try
            {
                _transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, ct);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
            _connection = connection; // both or neither: a request never runs its statements outside its transaction
        }
        return _connection;
    }

    /// <summary>
    /// Authenticates an API key hash and, when it is valid, sets the user context. With <paramref name="workspaceId"/>
    /// (the route names a workspace) it also enters that workspace in the same round trip — the key's cap and
    /// confinement apply exactly as in <see cref="EnterWorkspaceAsync"/>, whose statement it is.
    /// </summary>
    public Task<AuthenticatedKey?> AuthenticateKeyAsync(byte[] keyHash, string? workspaceId, CancellationToken ct) =>
        AuthenticateAsync("authenticate_api_key", keyHash, workspaceId, ct);

    /// <summary>
    /// Authenticates a dashboard session token's hash: the session acts as the API key it was started with (the same
    /// user, confinement and cap), exactly as <see cref="AuthenticateKeyAsync"/> does for that key.
    /// </summary>
    public Task<AuthenticatedKey?> AuthenticateSessionAsync(byte[] tokenHash, string? workspaceId, CancellationToken ct) =>
        AuthenticateAsync("authenticate_dashboard_session", tokenHash, workspaceId, ct);

    private async Task<AuthenticatedKey?> AuthenticateAsync(string function, byte[] keyHash, string? workspaceId, CancellationToken ct)
    {
        var authenticate =
            $"""
            SELECT a.key_id, a.user_id, a.workspace_id, a.key_role, a.platform_role, a.key_expires_at
              FROM {function}(@keyHash) a
             WHERE set_config('app.user_id', a.user_id::text, true) IS NOT NULL
               AND set_config('app.platform_role', coalesce(a.platform_role, ''), true) IS NOT NULL
               AND set_config('app.key_workspace_id', coalesce(a.workspace_id, ''), true) IS NOT NULL
               AND set_config('app.key_role', coalesce(a.key_role, ''), true) IS NOT NULL
            """;
        AuthenticatedKey? key;
        string? workspaceRole = null;
        var enter = workspaceId is { Length: > 0 and <= 64 };
        if (enter)
        {
            // Two statements, one round trip: the second sees the context the first set (nothing, for a bad key).
            var connection = await ConnectionAsync(ct);
            try
            {
                await using var results = await connection.QueryMultipleAsync(new CommandDefinition(
                    authenticate + ";\n" + EnterWorkspaceSql, new { keyHash, workspaceId }, _transaction, cancellationToken: ct));
                key = await results.ReadSingleOrDefaultAsync<AuthenticatedKey>();
                workspaceRole = await results.ReadSingleOrDefaultAsync<string?>();
            }
            catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && StatementFailed())
            {
                throw;
            }
        }
        else
        {
            key = await QuerySingleOrDefaultAsync<AuthenticatedKey>(authenticate, new { keyHash }, ct);
        }
        if (key is not null)
        {
            UserId = key.UserId;
            KeyId = key.KeyId;
            KeyWorkspaceId = key.WorkspaceId;
            KeyRole = key.KeyRole;
            KeyExpiresAt = key.KeyExpiresAt;
            PlatformRole = key.PlatformRole;
            if (workspaceRole is not null)
            {
                WorkspaceId = workspaceId;
                WorkspaceRole = workspaceRole;
            }
        }
        return key;
    }

    /// <summary>Signs in an OIDC user by verified email and sets the user context.</summary>
    public async Task<bool> AuthenticateEmailAsync(string email, CancellationToken ct)
    {
        var user = await QuerySingleOrDefaultAsync<(Guid UserId, string? PlatformRole)>(
            """
            SELECT f.user_id, f.platform_role
              FROM find_user_by_email(@email) f
             WHERE set_config('app.user_id', f.user_id::text, true) IS NOT NULL
               AND set_config('app.platform_role', coalesce(f.platform_role, ''), true) IS NOT NULL
            """, new { email }, ct);
        if (user.UserId == Guid.Empty)
        {
            return false;
        }
        UserId = user.UserId;
        PlatformRole = user.PlatformRole;
        return true;
    }

    /// <summary>
    /// The caller's membership of @workspaceId, capped by the key's role and refused (null) when the key is confined
    /// to another workspace; sets the workspace context (to nothing for a non-member). Reads the key's cap and
    /// confinement from the context the authentication set, so an OIDC sign-in (no key) has neither. (MATERIALIZED:
    /// the membership is looked up once, not once per reference.)
    /// </summary>
    private const string EnterWorkspaceSql =
        """
        WITH k AS (SELECT nullif(current_setting('app.key_role', true), '') AS cap,
                          nullif(current_setting('app.key_workspace_id', true), '') AS confined_to),
             m AS MATERIALIZED (SELECT CASE WHEN k.confined_to IS NULL OR k.confined_to = @workspaceId
                               THEN workspace_role_of(app_user_id(), @workspaceId) END AS role, k.cap FROM k),
             r AS (SELECT CASE WHEN m.role IS NULL THEN NULL
                               WHEN m.cap IS NULL THEN m.role
                               WHEN array_position(ARRAY['viewer','member','admin','owner'], m.role)
                                    <= array_position(ARRAY['viewer','member','admin','owner'], m.cap) THEN m.role
                               ELSE m.cap END AS role FROM m)
        SELECT r.role,
               set_config('app.workspace_id', CASE WHEN r.role IS NULL THEN '' ELSE @workspaceId END, true),
               set_config('app.workspace_role', coalesce(r.role, ''), true)
          FROM r
        """;

    /// <summary>
    /// Enters a workspace: looks up the caller's membership, caps it by the key's role, and sets the workspace
    /// context. Returns the effective role, or null when the caller is not a member (or the key is confined elsewhere).
    /// </summary>
    public async Task<string?> EnterWorkspaceAsync(string workspaceId, CancellationToken ct)
    {
        if (WorkspaceId == workspaceId && WorkspaceRole is not null)
        {
            return WorkspaceRole; // entered with the authentication
        }
        var role = await QuerySingleOrDefaultAsync<string?>(EnterWorkspaceSql, new { workspaceId }, ct);
        // The statement set the context either way (to nothing for a non-member): keep this side in step with it.
        WorkspaceId = role is null ? null : workspaceId;
        WorkspaceRole = role;
        return role;
    }

    /// <summary>
    /// Acts as a user the server identified by other means than a key: an OAuth callback, whose single-use state names
    /// who started the connection. No platform role; the workspace is then entered as for any caller.
    /// </summary>
    public async Task ActAsUserAsync(Guid userId, CancellationToken ct)
    {
        await ExecuteAsync("SELECT set_config('app.user_id', @userId, true), set_config('app.platform_role', '', true)", new { userId = userId.ToString() }, ct);
        UserId = userId;
        PlatformRole = null;
    }

    /// <summary>Sets the workspace context directly (used when the caller just created the workspace).</summary>
    public async Task SetWorkspaceAsync(string workspaceId, string role, CancellationToken ct)
    {
        await ExecuteAsync("SELECT set_config('app.workspace_id', @workspaceId, true), set_config('app.workspace_role', @role, true)",
            new { workspaceId, role }, ct);
        WorkspaceId = workspaceId;
        WorkspaceRole = role;
    }

    public async Task<IReadOnlyList<T>> QueryAsync<T>(string sql, object? args, CancellationToken ct)
    {
        var connection = await ConnectionAsync(ct);
        try
        {
            var rows = await connection.QueryAsync<T>(new CommandDefinition(sql, args, _transaction, cancellationToken: ct));
            return rows.AsList();
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && StatementFailed())
        {
            throw;
        }
    }

    public async Task<T?> QuerySingleOrDefaultAsync<T>(string sql, object? args, CancellationToken ct)
    {
        var connection = await ConnectionAsync(ct);
        try
        {
            return await connection.QuerySingleOrDefaultAsync<T>(new CommandDefinition(sql, args, _transaction, cancellationToken: ct));
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && StatementFailed())
        {
            throw;
        }
    }

    public async Task<int> ExecuteAsync(string sql, object? args, CancellationToken ct)
    {
        var connection = await ConnectionAsync(ct);
        try
        {
            return await connection.ExecuteAsync(new CommandDefinition(sql, args, _transaction, cancellationToken: ct));
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && StatementFailed())
        {
            throw;
        }
    }

    /// <summary>
    /// Notes that PostgreSQL refused or cancelled a statement (the exception goes on unchanged). Npgsql 10 mis-tracks a statement
    /// that fails on the round trip that auto-prepares it (npgsql#6391): the connection's next run of that statement
    /// would read "unexpected backend message DataRow". So a request that saw a refusal unprepares its connection
    /// before the pool hands it to anyone else.
    /// </summary>
    private bool StatementFailed()
    {
        _statementFailed = true;
        return false;
    }

    public async Task CommitAsync(CancellationToken ct)
    {
        if (_transaction is not null && !_completed)
        {
            await _transaction.CommitAsync(ct);
            _completed = true;
        }
    }

    /// <summary>Ends the transaction (rolled back unless committed) and returns the connection now, for a response that
    /// goes on long after its database work (a server-sent event stream).</summary>
    public async Task ReleaseAsync()
    {
        await DisposeAsync();
        _released = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_transaction is not null)
        {
            if (!_completed)
            {
                try
                {
                    await _transaction.RollbackAsync();
                    if (_statementFailed)
                    {
                        _connection?.UnprepareAll();
                    }
                }
                catch (Exception e) when (e is NpgsqlException or ObjectDisposedException or InvalidOperationException)
                {
                    // Broken (the database went away) or left mid-command: never hand it to the next request. A busy
                    // connection returned to the pool is closed once the pool is cleared.
                    if (_connection is not null)
                    {
                        NpgsqlConnection.ClearPool(_connection);
                    }
                }
            }
            await _transaction.DisposeAsync();
            _transaction = null;
        }
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }
}

public sealed record AuthenticatedKey(Guid? KeyId, Guid UserId, string? WorkspaceId, string? KeyRole, string? PlatformRole, DateTime? KeyExpiresAt);
