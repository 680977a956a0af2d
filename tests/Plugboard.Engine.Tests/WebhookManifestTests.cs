using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

/// <summary>A manifest's <c>webhooks</c> section: its model, what the schema refuses, what only code can check, and its templates.</summary>
public sealed class WebhookManifestTests
{
    private const string Head = """
        version: 1
        base_url: https://api.example.com
        inputs: { number: { type: integer } }
        steps: [{ id: list, request: { path: /items }, extract: { items: "$.items[*]" } }]
        streams: [{ name: items, records: steps.list.items, primary_key: "{{ record.id }}", document: { content: "{{ record.text }}" } }]

        """;

    [Fact]
    public void A_webhooks_section_becomes_its_model_with_each_providers_secret_default()
    {
        var result = ManifestParser.Parse(Head + """
            webhooks:
              verify: github
              event_type: "{{ event.headers['x-github-event'] }}.{{ event.payload.action }}"
              events:
                issues.opened: { action: execution, inputs: { number: "{{ event.payload.issue.number }}" } }
                push: { action: sync, full_refresh: true }
                "*": { action: ignore }
            """);
        Assert.Empty(result.Issues);
        var hooks = result.Manifest!.Webhooks!;
        Assert.Equal(("github", "provided"), (hooks.Verify, hooks.Secret));
        Assert.Equal("execution", hooks.ActionFor("issues.opened")!.Action);
        Assert.True(hooks.ActionFor("push")!.FullRefresh);
        Assert.Equal("ignore", hooks.ActionFor("star.created")!.Action); // the * entry
        Assert.Equal("generated", ManifestParser.Parse(Head + "webhooks: { verify: standard }").Manifest!.Webhooks!.Secret);
        Assert.Equal("generated", ManifestParser.Parse(Head + "webhooks: { verify: graph }").Manifest!.Webhooks!.Secret);
        Assert.Null(ManifestParser.Parse(Head + "webhooks: { verify: zoom }").Manifest!.Webhooks!.ActionFor("anything"));
        Assert.Null(ManifestParser.Parse(Head).Manifest!.Webhooks);
    }

    [Theory]
    [InlineData("webhooks: { verify: carrier-pigeon }", "/webhooks/verify", "must be one of standard")]
    [InlineData("webhooks: { events: {} }", "/webhooks/verify", "'verify' is required.")]
    [InlineData("webhooks: { verify: hmac }", "/webhooks/hmac", "needs hmac")]
    [InlineData("webhooks: { verify: standard, hmac: { header: X-Sig } }", "/webhooks/hmac", "only with verify: hmac")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: X-Sig, signed: 'v1:' } }", "/webhooks/hmac/signed", "must contain {body}")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: X-Sig, signed: '{timestamp}.{body}' } }", "/webhooks/hmac/signed", "timestamp_header")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: X-Sig, timestamp_header: X-Time } }", "/webhooks/hmac/signed", "only if it is signed")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: X-Sig, id_header: X-Id } }", "/webhooks/hmac/signed", "only if it is signed")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: 'X Sig' } }", "/webhooks/hmac/header", "header is an HTTP header name.")]
    [InlineData("webhooks: { verify: hmac, hmac: { header: X-Sig, algorithm: md5 } }", "/webhooks/hmac/algorithm", "must be one of sha1")]
    [InlineData("webhooks: { verify: zoom, events: { a: { action: dance } } }", "/webhooks/events/a/action", "must be one of sync")]
    [InlineData("webhooks: { verify: zoom, events: { a: { action: sync, inputs: { number: 1 } } } }", "/webhooks/events/a/inputs", "only to action: execution")]
    [InlineData("webhooks: { verify: zoom, events: { a: { action: execution, full_refresh: true } } }", "/webhooks/events/a/full_refresh", "only to action: sync")]
    [InlineData("webhooks: { verify: zoom, events: { a: { action: execution, inputs: { colour: red } } } }", "/webhooks/events/a/inputs/colour", "not a declared input")]
    [InlineData("webhooks: { verify: zoom, event_type: '{{ credentials.token }}' }", "/webhooks/event_type", "cannot read credentials")]
    [InlineData("webhooks: { verify: zoom, event_id: '{{ steps.list.items }}' }", "/webhooks/event_id", "cannot reference steps.list")]
    [InlineData("webhooks: { verify: zoom, event_id: '{{ event.payload.id ' }", "/webhooks/event_id", "Template syntax error")]
    [InlineData("webhooks: { verify: zoom, secret: maybe }", "/webhooks/secret", "must be one of generated")]
    public void Mistakes_in_the_webhooks_section_are_reported_at_their_pointer(string section, string pointer, string message)
    {
        var result = ManifestParser.Parse(Head + section);
        Assert.Null(result.Manifest);
        var issue = Assert.Single(result.Issues, i => i.Pointer == pointer);
        Assert.Contains(message, issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_sync_action_needs_streams()
    {
        var result = ManifestParser.Parse("""
            version: 1
            base_url: https://api.example.com
            steps: [{ id: a, request: { path: /a } }]
            webhooks: { verify: standard, events: { changed: { action: sync } } }
            """);
        Assert.Contains(result.Issues, i => i.Pointer == "/webhooks/events/changed/action" && i.Message.Contains("needs streams", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_manifest_references_event_type_example_names_a_push_push_and_an_issue_event_by_its_action()
    {
        var reference = File.ReadAllText(ManifestTests.RepoFile("docs/manifest-reference.md"));
        var line = reference.Split('\n').Single(l => l.TrimStart().StartsWith("event_type: ", StringComparison.Ordinal));
        var template = System.Text.Json.JsonSerializer.Deserialize<string>(line.Trim()["event_type: ".Length..])!;
        async Task<string> TypeOf(string github, string body)
        {
            using var payload = System.Text.Json.JsonDocument.Parse(body);
            return await WebhookTemplates.RenderAsync(template, WebhookTemplates.Model(payload.RootElement, new Dictionary<string, string> { ["X-GitHub-Event"] = github }));
        }
        Assert.Equal("push", await TypeOf("push", """{"ref":"refs/heads/main"}"""));
        Assert.Equal("issues.opened", await TypeOf("issues", """{"action":"opened"}"""));
    }

    [Fact]
    public async Task Event_templates_see_the_payload_and_lower_case_headers_and_inputs_keep_their_json_types()
    {
        using var payload = System.Text.Json.JsonDocument.Parse("""{"action":"opened","issue":{"number":7,"labels":["bug","p1"]}}""");
        var model = WebhookTemplates.Model(payload.RootElement, new Dictionary<string, string> { ["X-GitHub-Event"] = "issues" }, "issues.opened", "d-1");
        Assert.Equal("issues.opened", await WebhookTemplates.RenderAsync("{{ event.headers['x-github-event'] }}.{{ event.payload.action }}", model));
        Assert.Equal("d-1/issues.opened", await WebhookTemplates.RenderAsync("{{ event.id }}/{{ event.type }}", model));
        var inputs = await WebhookTemplates.InputsAsync(System.Text.Json.Nodes.JsonNode.Parse("""{"number":"{{ event.payload.issue.number }}","labels":"{{ event.payload.issue.labels }}","text":"#{{ event.payload.issue.number }}"}""")!, model);
        Assert.Equal(7, (int)inputs["number"]!);
        Assert.Equal(2, inputs["labels"]!.AsArray().Count);
        Assert.Equal("#7", (string)inputs["text"]!);
        await Assert.ThrowsAsync<Templating.TemplateException>(async () => await WebhookTemplates.RenderAsync("{{ event.payload.id ", model));
    }

    [Theory]
    [InlineData("templates/zoom-recordings.yaml", "zoom")]
    [InlineData("templates/teams-transcripts.yaml", "graph")]
    public void The_meeting_templates_take_webhooks(string file, string verify)
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "Directory.Build.props")))
        {
            dir = Path.GetDirectoryName(dir)!;
        }
        var result = ManifestParser.Parse(File.ReadAllText(Path.Combine(dir, file)), "/manifest");
        Assert.Empty(result.Issues);
        Assert.Equal(verify, result.Manifest!.Webhooks!.Verify);
        Assert.Contains(result.Manifest.Webhooks.Events.Values, a => a.Action == "sync");
    }
}
