using System.Net.Http.Json;
using Dapper;
using Npgsql;
using Plugboard.Security;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>A canary secret stored as a credential never appears in a pg_dump, the server's logs, or any API response.</summary>
[Collection(ServerCollection.Name)]
public sealed class SecretsTests(PlugboardServer server)
{
    [Fact]
    public async Task Canary_secret_never_leaves_the_ciphertext()
    {
        var team = await server.TeamAsync();
        var http = team.Owner.Http;
        var canary = server.Canary;
        var basePath = $"/v1/workspaces/{team.Id}";

        var created = await (await http.PostAsJsonAsync($"{basePath}/credentials", new { name = "canary", auth_type = "bearer", secret = new { token = canary } })).AssertStatusAsync(201);
        var credentialId = created.GetProperty("id").GetString();
        Assert.StartsWith("••••", created.GetProperty("masked_hint").GetString());
        await (await http.GetAsync($"{basePath}/credentials/{credentialId}")).AssertStatusAsync(200);
        await (await http.GetAsync($"{basePath}/credentials")).AssertStatusAsync(200);
        await (await http.PatchAsync($"{basePath}/credentials/{credentialId}", HttpAssertions.Json(new { secret = new { token = canary + "-v2" } }))).AssertStatusAsync(200);
        // Failed writes that carry the canary: a conflict, a bad field name, an unknown field, bad JSON.
        await (await http.PostAsJsonAsync($"{basePath}/credentials", new { name = "canary", auth_type = "bearer", secret = new { token = canary } })).AssertProblemAsync(409);
        await (await http.PostAsJsonAsync($"{basePath}/credentials", new { name = "bad", auth_type = "bearer", secret = new Dictionary<string, string> { ["Bad Name"] = canary } })).AssertProblemAsync(422);
        await (await http.PostAsJsonAsync($"{basePath}/credentials", new { name = "bad", auth_type = "bearer", secret = new { token = canary }, extra = canary })).AssertProblemAsync(400);
        await (await http.PostAsync($"{basePath}/credentials", HttpAssertions.RawJson($"{{\"name\":\"x\",\"secret\":{{\"token\":\"{canary}\""))).AssertProblemAsync(400);
        await (await http.PostAsJsonAsync($"{basePath}/connectors", new { name = "literal", manifest = new { auth = new { type = "bearer", token = canary } } })).AssertProblemAsync(422, "literal-secret");
        // A template install with inline credentials.
        var official = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        await (await http.PostAsJsonAsync($"/v1/templates/{official}/install", new { workspace_id = team.Id, name = "canary-install", credentials = new { api_key = canary }, config = new { base_url = "https://api.example.test" } })).AssertStatusAsync(201);
        // The canary as a bearer token: rejected without being echoed or logged.
        using (var bogus = server.Client($"pb_{canary}_{canary}"))
        {
            await (await bogus.GetAsync("/v1/workspaces")).AssertProblemAsync(401, "unauthorized");
        }

        foreach (var body in server.ResponseBodies)
        {
            Assert.DoesNotContain(canary, body, StringComparison.Ordinal);
        }
        Assert.DoesNotContain(canary, server.LogText, StringComparison.Ordinal);
        Assert.DoesNotContain(canary, await PgDumpAsync(), StringComparison.Ordinal);

        // The stored value is a ciphertext that decrypts only on its own row.
        var stored = await server.OwnerScalarAsync<string>("SELECT encrypted_payload FROM workspace_api_credentials WHERE id = @id", new { id = Guid.Parse(credentialId!) });
        Assert.StartsWith("pb1:", stored);
        var aad = KeyRing.Aad(team.Id, "workspace_api_credentials", Guid.Parse(credentialId!), "encrypted_payload");
        Assert.Contains(canary + "-v2", server.Keys.Decrypt(stored, aad), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_ciphertext_copied_to_another_row_or_workspace_does_not_decrypt()
    {
        var a = await server.TeamAsync();
        var b = await server.TeamAsync();
        async Task<Guid> CreateAsync(TeamWorkspace t, string name) =>
            Guid.Parse((await (await t.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{t.Id}/credentials",
                new { name, auth_type = "api_key", secret = new { api_key = "s3cret-" + name } })).AssertStatusAsync(201)).GetProperty("id").GetString()!);
        var first = await CreateAsync(a, "first");
        var second = await CreateAsync(a, "second");
        var foreign = await CreateAsync(b, "foreign");
        var ciphertext = await server.OwnerScalarAsync<string>("SELECT encrypted_payload FROM workspace_api_credentials WHERE id = @first", new { first });
        Assert.Contains("s3cret-first", server.Keys.Decrypt(ciphertext, KeyRing.Aad(a.Id, "workspace_api_credentials", first, "encrypted_payload")), StringComparison.Ordinal);
        Assert.Throws<SecretDecryptionException>(() => server.Keys.Decrypt(ciphertext, KeyRing.Aad(a.Id, "workspace_api_credentials", second, "encrypted_payload")));
        Assert.Throws<SecretDecryptionException>(() => server.Keys.Decrypt(ciphertext, KeyRing.Aad(b.Id, "workspace_api_credentials", foreign, "encrypted_payload")));
        var tampered = ciphertext[..^2] + (ciphertext[^2] == 'A' ? "B" : "A") + ciphertext[^1];
        Assert.Throws<SecretDecryptionException>(() => server.Keys.Decrypt(tampered, KeyRing.Aad(a.Id, "workspace_api_credentials", first, "encrypted_payload")));
        Assert.Throws<SecretDecryptionException>(() => server.Keys.Decrypt("pb1:nokey:AAAA", "x"));
        Assert.Throws<SecretDecryptionException>(() => server.Keys.Decrypt("plaintext that looks like nothing", "x"));
        // The database refuses anything that is not a Plugboard ciphertext in the secret column.
        var error = await Assert.ThrowsAsync<PostgresException>(() => server.OwnerExecuteAsync(
            "UPDATE workspace_api_credentials SET encrypted_payload = 'plain secret' WHERE id = @first", new { first }));
        Assert.Equal(PostgresErrorCodes.CheckViolation, error.SqlState);
    }

    [Fact]
    public async Task Key_rotation_reencrypts_every_secret_under_the_new_key()
    {
        var team = await server.TeamAsync();
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            var body = await (await team.Owner.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/credentials",
                new { name = $"rot{i}", auth_type = "api_key", secret = new { api_key = $"value-{i}" } })).AssertStatusAsync(201);
            ids.Add(Guid.Parse(body.GetProperty("id").GetString()!));
        }
        // An OAuth connection still waiting for its callback is re-encrypted too (its callback decrypts it later).
        var authorizationId = Guid.CreateVersion7();
        await server.OwnerExecuteAsync(
            """
            INSERT INTO oauth_authorizations (workspace_id, id, state_hash, created_by, manifest, credential_name, encrypted_payload, redirect_uri, status, expires_at, completed_at)
            VALUES (@ws, @authorizationId, @stateHash, @userId, '{}', 'waiting', @payload, 'https://plugboard.example/callback', 'pending', now() + interval '10 minutes', NULL)
            """, new
            {
                ws = team.Id,
                authorizationId,
                stateHash = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32),
                userId = team.Owner.UserId,
                payload = server.Keys.Encrypt("{\"verifier\":\"waiting-flow\"}", KeyRing.Aad(team.Id, "oauth_authorizations", authorizationId, "encrypted_payload")),
            });
        // A finished one is never decrypted again: it keeps its ciphertext until it is pruned.
        var finishedId = Guid.CreateVersion7();
        var finishedPayload = server.Keys.Encrypt("{}", KeyRing.Aad(team.Id, "oauth_authorizations", finishedId, "encrypted_payload"));
        await server.OwnerExecuteAsync(
            """
            INSERT INTO oauth_authorizations (workspace_id, id, state_hash, created_by, manifest, credential_name, encrypted_payload, redirect_uri, status, expires_at, completed_at)
            VALUES (@ws, @finishedId, @stateHash, @userId, '{}', 'done', @finishedPayload, 'https://plugboard.example/callback', 'completed', now(), now())
            """, new { ws = team.Id, finishedId, stateHash = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), userId = team.Owner.UserId, finishedPayload });
        // A connector's webhook signing secret is re-encrypted like a credential.
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "standard" }));
        var rotated = server.Keys.WithNewKey();
        // A credential another transaction holds is waited for, not skipped: the rotation ends with no row under the old key.
        await using var holder = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        await holder.OpenAsync();
        await using var held = await holder.BeginTransactionAsync();
        await holder.ExecuteAsync("SELECT 1 FROM workspace_api_credentials WHERE id = @id FOR UPDATE", new { id = ids[0] }, held);
        var rotation = KeyRotation.ReencryptAsync(server.Service<Plugboard.Data.Db>(), rotated, _ => { }, CancellationToken.None, batchSize: 2);
        await using var connection = new NpgsqlConnection(server.Settings.OwnerConnectionString);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await server.OwnerScalarAsync<long>(
                       """
                       SELECT count(*) FROM pg_stat_activity
                        WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%workspace_api_credentials%FOR NO KEY UPDATE' AND query NOT LIKE '%SKIP LOCKED%'
                       """) == 0)
            {
                Assert.True(DateTime.UtcNow < deadline && !rotation.IsCompleted, "the rotation never waited for the held credential");
                await Task.Delay(20);
            }
            await held.CommitAsync();
            var reencrypted = await rotation;
            Assert.True(reencrypted >= 5);
            var stale = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE key_id <> @current", new { current = rotated.CurrentKeyId });
            Assert.Equal(0, stale);
            for (var i = 0; i < ids.Count; i++)
            {
                var row = await connection.QuerySingleAsync<(string Payload, string KeyId)>("SELECT encrypted_payload, key_id FROM workspace_api_credentials WHERE id = @id", new { id = ids[i] });
                Assert.Equal(rotated.CurrentKeyId, KeyRing.KeyIdOf(row.Payload));
                Assert.Contains($"value-{i}", rotated.Decrypt(row.Payload, KeyRing.Aad(team.Id, "workspace_api_credentials", ids[i], "encrypted_payload")), StringComparison.Ordinal);
            }
            var authorization = await connection.ExecuteScalarAsync<string>("SELECT encrypted_payload FROM oauth_authorizations WHERE id = @authorizationId", new { authorizationId });
            Assert.Equal(rotated.CurrentKeyId, KeyRing.KeyIdOf(authorization!));
            Assert.Contains("waiting-flow", rotated.Decrypt(authorization!, KeyRing.Aad(team.Id, "oauth_authorizations", authorizationId, "encrypted_payload")), StringComparison.Ordinal);
            Assert.Equal(finishedPayload, await connection.ExecuteScalarAsync<string>("SELECT encrypted_payload FROM oauth_authorizations WHERE id = @finishedId", new { finishedId }));
            var webhookSecret = await connection.ExecuteScalarAsync<string>("SELECT webhook_secret FROM connectors WHERE id = @id::uuid", new { id = hook.ConnectorId });
            Assert.Equal(rotated.CurrentKeyId, KeyRing.KeyIdOf(webhookSecret!));
            Assert.Equal(hook.Secret, rotated.Decrypt(webhookSecret!, KeyRing.Aad(team.Id, "connectors", Guid.Parse(hook.ConnectorId), "webhook_secret")));
            // The old ring cannot read the new ciphertexts: rotation really changed the key.
            var sample = await connection.ExecuteScalarAsync<string>("SELECT encrypted_payload FROM workspace_api_credentials WHERE id = @id", new { id = ids[0] });
            Assert.Throws<SecretDecryptionException>(() => KeyRing.FromJson(server.Keys.ToJson()).Decrypt(sample!, KeyRing.Aad(team.Id, "workspace_api_credentials", ids[0], "encrypted_payload")));
        }
        finally
        {
            // Whatever failed above: the held row is released, the rotation finished, and everything rotated back so the
            // shared server (which knows only its own key) can read every secret again.
            await held.DisposeAsync();
            await Task.WhenAny(rotation);
            var back = new KeyRing([rotated.Entries[^1], .. server.Keys.Entries]);
            await KeyRotation.ReencryptAsync(server.Service<Plugboard.Data.Db>(), back, _ => { }, CancellationToken.None);
        }
        Assert.Equal(0, await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM workspace_api_credentials WHERE key_id <> @current", new { current = server.Keys.CurrentKeyId }));
    }

    private async Task<string> PgDumpAsync()
    {
        var output = await PgDump.RunAsync(server.Settings.OwnerConnectionString, "--data-only");
        Assert.Contains("workspace_api_credentials", output, StringComparison.Ordinal);
        return output;
    }
}
