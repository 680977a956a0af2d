using Dapper;
using Npgsql;

namespace Plugboard.Data;

/// <summary>Who a request acts as inside its workspace, kept after the request's own transaction has ended.</summary>
public sealed record WorkspaceContext(string WorkspaceId, Guid UserId, string Role);

/// <summary>
/// A short transaction on the API role under a request's workspace context (row-level security applies exactly as in
/// the request's own transaction). For work that outlives the request transaction — a stream, an upload of many files —
/// so no connection is held between its steps. Rolled back unless committed.
/// </summary>
public sealed class WorkspaceSession : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private bool _committed;
    private bool _statementFailed;
    private bool _disposed;

    private WorkspaceSession(NpgsqlConnection connection, NpgsqlTransaction transaction) => (_connection, _transaction) = (connection, transaction);

    public static async Task<WorkspaceSession> BeginAsync(Db db, WorkspaceContext context, CancellationToken ct)
    {
        var connection = await db.Api.OpenConnectionAsync(ct);
        try
        {
            var transaction = await connection.BeginTransactionAsync(ct);
            var session = new WorkspaceSession(connection, transaction);
            await session.ExecuteAsync(
                "SELECT set_config('app.workspace_id', @WorkspaceId, true), set_config('app.user_id', @UserId::text, true), set_config('app.workspace_role', @Role, true)",
                new { context.WorkspaceId, UserId = context.UserId.ToString(), context.Role }, ct);
            return session;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async Task<IReadOnlyList<T>> QueryAsync<T>(string sql, object? args, CancellationToken ct)
    {
        try
        {
            return (await _connection.QueryAsync<T>(new CommandDefinition(sql, args, _transaction, cancellationToken: ct))).AsList();
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && Failed())
        {
            throw;
        }
    }

    public async Task<T?> QuerySingleOrDefaultAsync<T>(string sql, object? args, CancellationToken ct)
    {
        try
        {
            return await _connection.QuerySingleOrDefaultAsync<T>(new CommandDefinition(sql, args, _transaction, cancellationToken: ct));
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && Failed())
        {
            throw;
        }
    }

    public async Task<int> ExecuteAsync(string sql, object? args, CancellationToken ct)
    {
        try
        {
            return await _connection.ExecuteAsync(new CommandDefinition(sql, args, _transaction, cancellationToken: ct));
        }
        catch (Exception e) when ((e is PostgresException || e.InnerException is PostgresException) && Failed())
        {
            throw;
        }
    }

    public async Task CommitAsync(CancellationToken ct)
    {
        await _transaction.CommitAsync(ct);
        _committed = true;
    }

    /// <summary>As in <see cref="RequestDb"/>: a refused statement may leave npgsql#6391's mis-tracked preparation behind.</summary>
    private bool Failed()
    {
        _statementFailed = true;
        return false;
    }

    /// <summary>Rolls back unless committed and returns the connection; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            if (!_committed)
            {
                await _transaction.RollbackAsync();
                if (_statementFailed)
                {
                    _connection.UnprepareAll();
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or ObjectDisposedException or InvalidOperationException)
        {
            NpgsqlConnection.ClearPool(_connection);
        }
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
