using System.Net.Http.Json;
using System.Text.Json;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>The marketplace, installs with the workspace's own credentials, community templates and moderation.</summary>
[Collection(ServerCollection.Name)]
public sealed class TemplateTests(PlugboardServer server)
{
    private static IEnumerable<JsonElement> Items(JsonElement page) => page.GetProperty("items").EnumerateArray();

    [Fact]
    public async Task Official_templates_from_the_templates_folder_are_in_the_marketplace()
    {
        var user = await server.NewUserAsync();
        var page = await (await user.Http.GetAsync("/v1/templates?kind=official&limit=200")).AssertStatusAsync(200);
        var slugs = Items(page).Select(t => t.GetProperty("slug").GetString()).ToList();
        Assert.Contains("generic-rest-api-key", slugs);
        Assert.Contains("oauth2-api", slugs);
        var oauth = Items(page).First(t => t.GetProperty("slug").GetString() == "oauth2-api");
        Assert.Equal("published", oauth.GetProperty("status").GetString());
        Assert.Equal(3, oauth.GetProperty("credential_fields").GetArrayLength());
        var filtered = await (await user.Http.GetAsync("/v1/templates?tag=oauth2")).AssertStatusAsync(200);
        Assert.All(Items(filtered), t => Assert.Contains("oauth2", t.GetProperty("tags").EnumerateArray().Select(x => x.GetString())));
        var searched = await (await user.Http.GetAsync("/v1/templates?q=refresh%20token")).AssertStatusAsync(200);
        Assert.Contains(Items(searched), t => t.GetProperty("slug").GetString() == "oauth2-api");
        var none = await (await user.Http.GetAsync("/v1/templates?q=%25_%25")).AssertStatusAsync(200);
        Assert.Empty(Items(none));
        await (await user.Http.GetAsync("/v1/templates?kind=secret")).AssertProblemAsync(400);
    }

    [Fact]
    public async Task Install_creates_the_workspace_credential_and_connector_and_counts_the_install()
    {
        var team = await server.TeamAsync();
        var templateId = await server.OwnerScalarAsync<Guid>("SELECT id FROM connector_templates WHERE slug = 'generic-rest-api-key'");
        var installsBefore = await server.OwnerScalarAsync<long>("SELECT install_count FROM connector_templates WHERE id = @templateId", new { templateId });
        var install = $"/v1/templates/{templateId}/install";
        await (await team.Admin.Http.PostAsJsonAsync(install, new { workspace_id = team.Id })).AssertProblemAsync(422, "validation-failed");
        await (await team.Admin.Http.PostAsJsonAsync(install, new { workspace_id = team.Id, credentials = new { api_key = "k", password = "p" } })).AssertProblemAsync(422);
        var connector = await (await team.Admin.Http.PostAsJsonAsync(install, new
        {
            workspace_id = team.Id,
            name = "My API",
            credentials = new { api_key = "workspace-own-key-0001" },
            config = new { base_url = "https://api.example.test" },
        })).AssertStatusAsync(201);
        Assert.Equal(templateId.ToString(), connector.GetProperty("template_id").GetString());
        Assert.Equal(1, connector.GetProperty("template_version").GetInt32());
        Assert.Equal("{{ credentials.api_key }}", connector.GetProperty("manifest").GetProperty("auth").GetProperty("value").GetString());
        var credentialId = connector.GetProperty("credential_id").GetString();
        var credential = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/credentials/{credentialId}")).AssertStatusAsync(200);
        Assert.Equal(["api_key"], credential.GetProperty("secret_fields").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(installsBefore + 1, await server.OwnerScalarAsync<long>("SELECT install_count FROM connector_templates WHERE id = @templateId", new { templateId }));
        // Installing with an existing credential of the workspace.
        var second = await (await team.Admin.Http.PostAsJsonAsync(install, new { workspace_id = team.Id, name = "Second", credential_id = credentialId, config = new { base_url = "https://api.example.test" } })).AssertStatusAsync(201);
        Assert.Equal(credentialId, second.GetProperty("credential_id").GetString());
        // The template itself never holds the secret.
        var template = await (await team.Viewer.Http.GetAsync($"/v1/templates/{templateId}")).AssertStatusAsync(200);
        Assert.DoesNotContain("workspace-own-key", template.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Templates_with_literal_secrets_are_refused()
    {
        var team = await server.TeamAsync();
        var cases = new object[]
        {
            new { version = 1, auth = new { type = "bearer", token = "hardcoded-token" } },
            new { version = 1, steps = new[] { new { id = "a", request = new { headers = new Dictionary<string, string> { ["Authorization"] = "Bearer abc123" } } } } },
            new { version = 1, steps = new[] { new { id = "a", request = new { query = new Dictionary<string, string> { ["api_key"] = "abc123" } } } } },
            new { version = 1, notes = "ghp_abcdefghijklmnopqrstuvwxyz0123456789" },
        };
        foreach (var manifest in cases)
        {
            var problem = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/templates",
                new { slug = "lit-" + Guid.NewGuid().ToString("N")[..8], name = "Literal", manifest })).AssertProblemAsync(422, "literal-secret");
            Assert.StartsWith("/manifest/", problem.GetProperty("errors")[0].GetProperty("pointer").GetString(), StringComparison.Ordinal);
            await (await server.PlatformOwner.Http.PostAsJsonAsync("/v1/admin/templates",
                new { slug = "lit-" + Guid.NewGuid().ToString("N")[..8], name = "Literal", manifest })).AssertProblemAsync(422, "literal-secret");
        }
        var ok = new
        {
            version = 1,
            base_url = "https://api.example.test",
            auth = new { type = "bearer", token = "{{ credentials.token }}" },
            steps = new[] { new { id = "a", request = new { method = "GET", path = "/", headers = new Dictionary<string, string> { ["Authorization"] = "Bearer {{ credentials.token }}", ["Accept"] = "application/json" } } } },
        };
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/templates", new { slug = "clean-" + Guid.NewGuid().ToString("N")[..8], name = "Clean", manifest = ok })).AssertStatusAsync(201);
        Assert.Equal(0, await server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_templates WHERE name = 'Literal'"));
    }

    [Fact]
    public async Task Community_templates_are_private_until_a_platform_admin_publishes_them()
    {
        var author = await server.TeamAsync();
        var outsider = await server.TeamAsync();
        var slug = "community-" + Guid.NewGuid().ToString("N")[..8];
        var draft = await (await author.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{author.Id}/templates",
            new { slug, name = "Shared thing", manifest = TestManifests.Minimal(), credential_fields = new[] { new { name = "token" } }, tags = new[] { "community" } })).AssertStatusAsync(201);
        var id = draft.GetProperty("id").GetString();
        Assert.Equal("draft", draft.GetProperty("status").GetString());
        Assert.Equal("community", draft.GetProperty("kind").GetString());
        await (await outsider.Owner.Http.GetAsync($"/v1/templates/{id}")).AssertProblemAsync(404);
        var market = await (await outsider.Owner.Http.GetAsync("/v1/templates?kind=community&limit=200")).AssertStatusAsync(200);
        Assert.DoesNotContain(Items(market), t => t.GetProperty("id").GetString() == id);
        // A workspace cannot publish or feature its own template.
        await (await author.Admin.Http.PatchAsync($"/v1/workspaces/{author.Id}/templates/{id}", HttpAssertions.Json(new { status = "published" }))).AssertProblemAsync(422);
        await (await author.Admin.Http.PostAsync($"/v1/admin/templates/{id}/publish", null)).AssertProblemAsync(403);
        // Platform admins see drafts and publish them.
        var admin = await server.NewUserAsync("admin");
        var queue = await (await admin.Http.GetAsync("/v1/admin/templates?status=draft&kind=community&limit=200")).AssertStatusAsync(200);
        Assert.Contains(Items(queue), t => t.GetProperty("id").GetString() == id);
        var published = await (await admin.Http.PostAsync($"/v1/admin/templates/{id}/publish", null)).AssertStatusAsync(200);
        Assert.Equal("published", published.GetProperty("status").GetString());
        await (await admin.Http.PostAsJsonAsync($"/v1/admin/templates/{id}/feature", new { featured = true })).AssertStatusAsync(200);
        var featured = await (await outsider.Owner.Http.GetAsync("/v1/templates?featured=true&limit=200")).AssertStatusAsync(200);
        Assert.Contains(Items(featured), t => t.GetProperty("id").GetString() == id);
        // Now others can install it with their own credential.
        await (await outsider.Owner.Http.PostAsJsonAsync($"/v1/templates/{id}/install", new { workspace_id = outsider.Id, credentials = new { token = "outsider-own" } })).AssertStatusAsync(201);
        // An edit by the author sends it back to review and out of the marketplace, with a new version.
        var edited = await (await author.Admin.Http.PatchAsync($"/v1/workspaces/{author.Id}/templates/{id}", HttpAssertions.Json(new { manifest = TestManifests.Minimal("https://new.example.test") }))).AssertStatusAsync(200);
        Assert.Equal("draft", edited.GetProperty("status").GetString());
        Assert.Equal(2, edited.GetProperty("version").GetInt32());
        await (await outsider.Owner.Http.GetAsync($"/v1/templates/{id}")).AssertProblemAsync(404);
        // Rejection records the reason.
        var rejected = await (await admin.Http.PostAsJsonAsync($"/v1/admin/templates/{id}/reject", new { reason = "needs docs" })).AssertStatusAsync(200);
        Assert.Equal("needs docs", rejected.GetProperty("rejection_reason").GetString());
    }

    [Fact]
    public async Task Official_template_lifecycle_developers_draft_admins_publish()
    {
        var developer = await server.NewUserAsync("developer");
        var admin = await server.NewUserAsync("admin");
        var created = await (await developer.Http.PostAsJsonAsync("/v1/admin/templates", new
        {
            slug = "official-" + Guid.NewGuid().ToString("N")[..8],
            name = "Official",
            category = "crm",
            manifest = TestManifests.Minimal(),
        })).AssertStatusAsync(201);
        var id = created.GetProperty("id").GetString();
        Assert.Equal("official", created.GetProperty("kind").GetString());
        Assert.Equal("draft", created.GetProperty("status").GetString());
        await (await developer.Http.PatchAsync($"/v1/admin/templates/{id}", HttpAssertions.Json(new { status = "published" }))).AssertProblemAsync(403);
        await (await admin.Http.PostAsync($"/v1/admin/templates/{id}/publish", null)).AssertStatusAsync(200);
        var changed = await (await developer.Http.PatchAsync($"/v1/admin/templates/{id}", HttpAssertions.Json(new { manifest = TestManifests.Minimal("https://v2.example.test") }))).AssertStatusAsync(200);
        Assert.Equal(2, changed.GetProperty("version").GetInt32());
        Assert.Equal("published", changed.GetProperty("status").GetString());
        var audit = await (await admin.Http.GetAsync("/v1/admin/audit-log?limit=200")).AssertStatusAsync(200);
        Assert.Contains(Items(audit), e => e.GetProperty("target_id").GetString() == id && e.GetProperty("action").GetString() == "template.published");
    }
}
