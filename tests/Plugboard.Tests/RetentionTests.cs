using Dapper;
using Npgsql;
using Plugboard.Features.Retention;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>Pruning by age: finished work past its retention goes, recent and unfinished work stays, and a row another
/// transaction holds is skipped (pruning never waits on normal work), then pruned the next time.</summary>
[Collection(ServerCollection.Name)]
public sealed class RetentionTests(PlugboardServer server)
{
    [Fact]
    public async Task Finished_work_past_its_retention_is_pruned_in_batches_and_locked_or_recent_rows_are_kept()
    {
        var team = await server.TeamAsync();
        var rows = await Seed.WorkspaceAsync(server, team.Id, team.Owner.UserId);
        await using var owner = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        await owner.OpenAsync();
        await owner.ExecuteAsync(
            """
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, finished_at, steps_log)
                SELECT @ws, gen_random_uuid(), @connector, 'succeeded', now() - interval '40 days', '[{"step_id": "a"}]' FROM generate_series(1, 7);
            INSERT INTO connector_executions (workspace_id, id, connector_id, status, finished_at) VALUES
                (@ws, gen_random_uuid(), @connector, 'failed', now() - interval '2 days'),
                (@ws, gen_random_uuid(), @connector, 'running', NULL);
            INSERT INTO connector_sync_logs (workspace_id, id, connector_id, status, completed_at) VALUES
                (@ws, gen_random_uuid(), @connector, 'completed', now() - interval '100 days'),
                (@ws, gen_random_uuid(), @connector, 'failed', now() - interval '10 days');
            INSERT INTO connector_webhook_events (workspace_id, id, connector_id, processed, processed_at) VALUES
                (@ws, gen_random_uuid(), @connector, true, now() - interval '31 days'),
                (@ws, gen_random_uuid(), @connector, false, NULL);
            INSERT INTO idempotency_keys (user_id, key, workspace_id, request_hash, created_at) VALUES
                (@user, 'old-' || gen_random_uuid(), @ws, '\x00', now() - interval '3 days'),
                (@user, 'new-' || gen_random_uuid(), @ws, '\x00', now());
            INSERT INTO jobs (id, kind, workspace_id, state, finished_at) VALUES
                (gen_random_uuid(), 'retention-test', @ws, 'dead', now() - interval '15 days'),
                (gen_random_uuid(), 'retention-test', @ws, 'dead', now() - interval '1 day');
            UPDATE oauth_authorizations SET expires_at = now() - interval '2 days' WHERE workspace_id = @ws;
            INSERT INTO dashboard_sessions (id, token_hash, api_key_id, expires_at)
                SELECT gen_random_uuid(), sha256(gen_random_uuid()::text::bytea), k.id, e
                  FROM (SELECT id FROM api_keys WHERE user_id = @user LIMIT 1) k, unnest(ARRAY[now() - interval '2 days', now() + interval '1 hour']) e;
            """, new { ws = team.Id, connector = rows.ConnectorId, user = team.Owner.UserId });

        // Another transaction holds one old execution: the pruner skips it instead of waiting.
        var held = await owner.ExecuteScalarAsync<Guid>(
            "SELECT id FROM connector_executions WHERE workspace_id = @ws AND finished_at < now() - interval '30 days' LIMIT 1", new { ws = team.Id });
        await using var holder = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await holder.ExecuteAsync("SELECT 1 FROM connector_executions WHERE workspace_id = @ws AND id = @held FOR UPDATE", new { ws = team.Id, held }, hold);

        var pruner = new RetentionPruner(server.Service<Plugboard.Data.Db>(), new RetentionOptions(30, 90, 30, 14, 48, TimeSpan.FromHours(1), BatchSize: 2),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<RetentionPruner>.Instance);
        var deleted = (await pruner.PruneAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)))!;
        Assert.True(deleted["executions"] >= 6);
        // Its session lock lived on a connection of its own, which is closed (not returned to a pool with the lock on it).
        // (A closed session leaves pg_stat_activity once its backend has exited, a moment after the close.)
        for (var deadline = DateTime.UtcNow.AddSeconds(10); await owner.ExecuteScalarAsync<long>(
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'plugboard-retention'") > 0;)
        {
            Assert.True(DateTime.UtcNow < deadline, "the pruner's session is still open");
            await Task.Delay(50);
        }

        async Task<long> Count(string sql) => await owner.ExecuteScalarAsync<long>(sql, new { ws = team.Id });
        Assert.Equal(1, await Count("SELECT count(*) FROM connector_executions WHERE workspace_id = @ws AND finished_at < now() - interval '30 days'"));
        Assert.Equal(2, await Count("SELECT count(*) FROM connector_executions WHERE workspace_id = @ws AND (finished_at IS NULL OR finished_at > now() - interval '30 days') AND duration_ms IS NULL"));
        Assert.Equal(0, await Count("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws AND completed_at < now() - interval '90 days'"));
        Assert.Equal(1, await Count("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws AND completed_at IS NOT NULL"));
        Assert.Equal(0, await Count("SELECT count(*) FROM connector_webhook_events WHERE workspace_id = @ws AND processed"));
        Assert.True(await Count("SELECT count(*) FROM connector_webhook_events WHERE workspace_id = @ws AND NOT processed") >= 1);
        Assert.Equal(0, await Count("SELECT count(*) FROM idempotency_keys WHERE workspace_id = @ws AND key LIKE 'old-%'"));
        Assert.Equal(1, await Count("SELECT count(*) FROM idempotency_keys WHERE workspace_id = @ws AND key LIKE 'new-%'"));
        Assert.Equal(1, await Count("SELECT count(*) FROM jobs WHERE workspace_id = @ws AND kind = 'retention-test'"));
        Assert.Equal(0, await Count("SELECT count(*) FROM oauth_authorizations WHERE workspace_id = @ws"));
        var sessions = await owner.QueryAsync<DateTime>("SELECT d.expires_at FROM dashboard_sessions d JOIN api_keys k ON k.id = d.api_key_id WHERE k.user_id = @user",
            new { user = team.Owner.UserId });
        Assert.Equal(DateTime.UtcNow.AddHours(1), Assert.Single(sessions).ToUniversalTime(), TimeSpan.FromMinutes(1)); // the expired one is gone, the live one kept

        await hold.RollbackAsync();
        await pruner.PruneAsync(CancellationToken.None);
        Assert.Equal(0, await Count("SELECT count(*) FROM connector_executions WHERE workspace_id = @ws AND finished_at < now() - interval '30 days'"));

        // Zero keeps a kind for ever.
        await owner.ExecuteAsync("INSERT INTO connector_sync_logs (workspace_id, id, connector_id, status, completed_at) VALUES (@ws, gen_random_uuid(), @connector, 'completed', now() - interval '1000 days')",
            new { ws = team.Id, connector = rows.ConnectorId });
        var keeping = new RetentionPruner(server.Service<Plugboard.Data.Db>(), new RetentionOptions(30, 0, 30, 14, 48, TimeSpan.FromHours(1), 100),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<RetentionPruner>.Instance);
        Assert.DoesNotContain("sync_logs", (await keeping.PruneAsync(CancellationToken.None))!.Keys);
        Assert.Equal(1, await Count("SELECT count(*) FROM connector_sync_logs WHERE workspace_id = @ws AND completed_at < now() - interval '900 days'"));
    }
}
