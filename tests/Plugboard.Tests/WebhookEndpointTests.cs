using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Plugboard.Tests.Infrastructure;

namespace Plugboard.Tests;

/// <summary>
/// POST /v1/hooks/{token} from outside, over HTTP: each provider's verification with signatures made by the tests
/// (and by the providers' own npm libraries), challenges, duplicates, rotation, limits, and what is stored.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class WebhookEndpointTests(PlugboardServer server)
{
    private readonly HttpClient _anonymous = server.Client(null);

    private static readonly object StandardHooks = new { verify = "standard" };

    private Task<long> StoredAsync(Hook hook) =>
        server.OwnerScalarAsync<long>("SELECT count(*) FROM connector_webhook_events WHERE connector_id = @id", new { id = Guid.Parse(hook.ConnectorId) });

    private Task<long> JobsAsync(Hook hook) =>
        server.OwnerScalarAsync<long>("SELECT count(*) FROM jobs WHERE kind = 'webhook' AND payload->>'connectorId' = @id", new { id = hook.ConnectorId });

    [Fact]
    public async Task A_standard_webhook_signed_by_the_npm_library_is_stored_with_its_job_and_a_repeated_id_is_acknowledged_without_a_second_event()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        Assert.StartsWith("whsec_", hook.Secret, StringComparison.Ordinal);
        Assert.True(Convert.FromBase64String(hook.Secret![6..]).Length >= 24);

        const string body = """{"type":"invoice.paid","data":{"id":"in_1","amount":1200}}""";
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, body);
        var now = Webhooks.Now;
        var signature = await Webhooks.SignWithNpmAsync("standard", hook.Secret, "msg_npm_1", now.ToString(System.Globalization.CultureInfo.InvariantCulture), file);
        Assert.Equal(Webhooks.StandardSignature(hook.Secret, "msg_npm_1", now, body), signature);

        HttpRequestMessage Signed()
        {
            var request = Webhooks.Post(hook.Path, body);
            request.Headers.Add("webhook-id", "msg_npm_1");
            request.Headers.Add("webhook-timestamp", now.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add("webhook-signature", "v1,bm90IHRoaXMgb25l " + signature); // several signatures: any one may match
            return request;
        }
        var first = await (await _anonymous.SendAsync(Signed())).AssertStatusAsync(200);
        Assert.Equal(1, first.GetProperty("stored").GetInt32());
        var again = await (await _anonymous.SendAsync(Signed())).AssertStatusAsync(200);
        Assert.Equal(0, again.GetProperty("stored").GetInt32());
        Assert.Equal(1, again.GetProperty("duplicates").GetInt32());
        Assert.Equal(1, await StoredAsync(hook));

        var events = await Webhooks.EventsAsync(hook);
        var stored = Assert.Single(events);
        Assert.Equal("invoice.paid", stored.GetProperty("event_type").GetString());
        Assert.Equal("msg_npm_1", stored.GetProperty("external_id").GetString());
        Assert.Equal("standard", stored.GetProperty("verification").GetString());
        var full = await (await team.Viewer.Http.GetAsync($"{hook.EventsUrl}/{stored.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.Equal(1200, full.GetProperty("payload").GetProperty("data").GetProperty("amount").GetInt32());
        Assert.Equal("msg_npm_1", full.GetProperty("headers").GetProperty("webhook-id").GetString());
        Assert.False(full.GetProperty("headers").TryGetProperty("webhook-signature", out _)); // signatures are not kept
        // Unmapped: processed with a note, nothing triggered.
        var processed = await Webhooks.ProcessedAsync(hook, stored.GetProperty("id").GetString()!);
        Assert.True(processed.GetProperty("processed").GetBoolean());
        Assert.Contains("No mapping for event type 'invoice.paid'", processed.GetProperty("note").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_signatures_stale_timestamps_and_missing_secrets_answer_401_store_nothing_and_are_counted_on_the_connector()
    {
        var team = await server.TeamAsync();
        var unset = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks), setSecret: false);
        var problem = await (await _anonymous.SendAsync(Webhooks.Standard(unset with { Secret = "whsec_" + Convert.ToBase64String(new byte[32]) }, "{}")))
            .AssertProblemAsync(401, "webhook-signature-invalid");
        Assert.Contains("no signing secret yet", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        var wrong = "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"a"}""", secret: wrong))).AssertProblemAsync(401, "webhook-signature-invalid");
        var tampered = Webhooks.Standard(hook, """{"type":"a"}""");
        tampered.Content = new StringContent("""{"type":"b"}""", Encoding.UTF8, "application/json");
        await (await _anonymous.SendAsync(tampered)).AssertProblemAsync(401, "webhook-signature-invalid");
        var old = await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"a"}""", timestamp: Webhooks.Now - 6 * 60))).AssertProblemAsync(401);
        Assert.Contains("5 minutes", old.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"a"}""", timestamp: Webhooks.Now + 6 * 60))).AssertProblemAsync(401);
        var unsigned = Webhooks.Post(hook.Path, """{"type":"a"}""");
        await (await _anonymous.SendAsync(unsigned)).AssertProblemAsync(401);
        Assert.Equal(0, await StoredAsync(hook));
        Assert.Equal(0, await JobsAsync(hook));

        var connector = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}")).AssertStatusAsync(200);
        Assert.Equal(5, connector.GetProperty("webhook_failed_verifications").GetInt64());
        var info = await (await team.Viewer.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/webhook")).AssertStatusAsync(200);
        Assert.Equal(5, info.GetProperty("failed_verifications").GetInt64());
        Assert.Contains("webhook-signature", info.GetProperty("last_failure").GetString(), StringComparison.Ordinal);
        Assert.Equal("standard", info.GetProperty("verify").GetString());
        Assert.Equal("generated", info.GetProperty("secret_source").GetString());
        Assert.EndsWith(hook.Path, info.GetProperty("url").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(hook.Secret!, info.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_tokens_answer_404_a_switched_off_endpoint_410_and_a_deleted_connectors_token_404()
    {
        var team = await server.TeamAsync();
        await (await _anonymous.SendAsync(Webhooks.Post("/v1/hooks/" + new string('a', 48), "{}"))).AssertProblemAsync(404);
        await (await _anonymous.SendAsync(Webhooks.Post("/v1/hooks/short", "{}"))).AssertProblemAsync(404);
        await (await _anonymous.SendAsync(Webhooks.Post("/v1/hooks/%2e%2e%2fetc", "{}"))).AssertProblemAsync(404);

        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}"""))).AssertStatusAsync(200);
        await (await team.Admin.Http.PatchAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}", new { webhook_active = false })).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}"""))).AssertProblemAsync(410, "webhook-disabled");
        await (await team.Admin.Http.PatchAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}", new { webhook_active = true })).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}"""))).AssertStatusAsync(200);

        // A manifest without a webhooks section has nothing to verify with: switched off as well.
        var plain = await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors",
            new { name = "plain", webhook_active = true, manifest = new { version = 1, base_url = "http://127.0.0.1:9", steps = new[] { new { id = "a", request = new { method = "GET", path = "/" } } } } }))
            .AssertStatusAsync(201);
        await (await _anonymous.SendAsync(Webhooks.Post(plain.GetProperty("webhook_url").GetString()!, "{}"))).AssertProblemAsync(410);

        await (await team.Admin.Http.DeleteAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}")).AssertStatusAsync(204);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}"""))).AssertProblemAsync(404);
    }

    [Fact]
    public async Task Oversized_bodies_answer_413_floods_answer_429_with_Retry_After_and_neither_stores_an_event()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        var big = "{\"type\":\"big\",\"data\":\"" + new string('x', 70_000) + "\"}";
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, big))).AssertProblemAsync(413, "payload-too-large");
        var chunked = Webhooks.Standard(hook, big);
        chunked.Headers.TransferEncodingChunked = true;
        await (await _anonymous.SendAsync(chunked)).AssertProblemAsync(413);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")))
            .AssertProblemAsync(400);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, "not json"))).AssertProblemAsync(400);
        // A verified form-encoded body is refused as a media type the endpoint does not take.
        var form = Webhooks.Standard(hook, "payload=%7B%22type%22%3A%22form%22%7D");
        form.Content!.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-www-form-urlencoded");
        var formProblem = await (await _anonymous.SendAsync(form)).AssertProblemAsync(415, "unsupported-media-type");
        Assert.Contains("send JSON", formProblem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var nul = await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"nul","text":"a\u0000b"}"""))).AssertProblemAsync(400);
        Assert.Contains("cannot store", nul.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"surrogate","text":"\ud800"}"""))).AssertProblemAsync(400);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"huge","n":1e400}"""))).AssertProblemAsync(400);
        // Unsigned, anything is 401 before the body is even parsed.
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, "not json"))).AssertProblemAsync(401);
        Assert.Equal(0, await StoredAsync(hook));

        // The test server allows 20/s with bursts of 60 per endpoint.
        var statuses = await Task.WhenAll(Enumerable.Range(0, 100).Select(async i =>
        {
            using var response = await _anonymous.SendAsync(Webhooks.Standard(hook, $$"""{"type":"flood","n":{{i}}}"""));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.NotNull(response.Headers.RetryAfter);
                await response.AssertProblemAsync(429, "too-many-requests");
            }
            return response.StatusCode;
        }));
        var accepted = statuses.Count(s => s == HttpStatusCode.OK);
        Assert.True(statuses.Count(s => s == HttpStatusCode.TooManyRequests) >= 20, string.Join(",", statuses));
        Assert.Equal(accepted, await StoredAsync(hook)); // every 2xx stored, nothing else
        Assert.Equal(100, accepted + statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task Rotating_a_generated_secret_keeps_the_old_one_valid_for_the_overlap_only()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        var secretsUrl = $"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/webhook/secret";
        await (await team.Member.Http.PostAsJsonAsync(secretsUrl, new { })).AssertProblemAsync(403);
        await (await team.Admin.Http.PostAsJsonAsync(secretsUrl, new { secret = "my-own-secret" })).AssertProblemAsync(422);
        // A provider-issued Standard Webhooks secret must look like one.
        var provided = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "standard", secret = "provided" }), setSecret: false);
        var providedUrl = $"/v1/workspaces/{team.Id}/connectors/{provided.ConnectorId}/webhook/secret";
        await (await team.Admin.Http.PostAsJsonAsync(providedUrl, new { secret = "whsec_AAAAAA==" })).AssertProblemAsync(422);
        await (await team.Admin.Http.PostAsJsonAsync(providedUrl, new { secret = "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) })).AssertStatusAsync(200);

        var rotated = await (await team.Admin.Http.PostAsJsonAsync(secretsUrl, new { overlap_hours = 1 })).AssertStatusAsync(200);
        var newSecret = rotated.GetProperty("secret").GetString()!;
        Assert.NotEqual(hook.Secret, newSecret);
        Assert.True(rotated.GetProperty("previous_secret_valid_until").GetDateTime() > DateTime.UtcNow.AddMinutes(59));
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"old"}"""))).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"new"}""", secret: newSecret))).AssertStatusAsync(200);
        var byType = (await Webhooks.EventsAsync(hook)).ToDictionary(e => e.GetProperty("event_type").GetString()!, e => e.GetProperty("verification").GetString());
        Assert.Equal("standard (previous secret)", byType["old"]);
        Assert.Equal("standard", byType["new"]);

        // Without overlap the replaced secret stops at once, and the one before it is long gone.
        var last = (await (await team.Admin.Http.PostAsJsonAsync(secretsUrl, new { overlap_hours = 0 })).AssertStatusAsync(200)).GetProperty("secret").GetString()!;
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}""", secret: newSecret))).AssertProblemAsync(401);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}"""))).AssertProblemAsync(401);
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"x"}""", secret: last))).AssertStatusAsync(200);
        Assert.DoesNotContain(last, server.LogText, StringComparison.Ordinal);
        var audit = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/audit-log?action=connector.webhook_secret_set")).AssertStatusAsync(200);
        Assert.True(audit.GetProperty("items").GetArrayLength() >= 3, audit.ToString()); // created, rotated, rotated (the other connector's too)
        Assert.DoesNotContain(last, audit.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GitHub_deliveries_signed_by_octokit_verify_with_the_provided_secret_which_is_write_only()
    {
        var team = await server.TeamAsync();
        var secret = "gh-" + server.Canary;
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "github" }), providedSecret: secret);
        var connector = await (await team.Admin.Http.GetAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}")).AssertStatusAsync(200);
        Assert.True(connector.GetProperty("webhook_secret_set").GetBoolean());
        Assert.DoesNotContain(secret, connector.ToString(), StringComparison.Ordinal);
        await (await team.Admin.Http.PostAsJsonAsync($"/v1/workspaces/{team.Id}/connectors/{hook.ConnectorId}/webhook/secret", new { })).AssertProblemAsync(422);

        const string body = """{"action":"opened","issue":{"number":7,"title":"Crash"}}""";
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, body);
        var signature = await Webhooks.SignWithNpmAsync("github", secret, file);
        Assert.Equal("sha256=" + Webhooks.Hex(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body))), signature);
        HttpRequestMessage Delivery(string sig, string delivery)
        {
            var request = Webhooks.Post(hook.Path, body);
            request.Headers.Add("X-Hub-Signature-256", sig);
            request.Headers.Add("X-GitHub-Event", "issues");
            request.Headers.Add("X-GitHub-Delivery", delivery);
            return request;
        }
        await (await _anonymous.SendAsync(Delivery(signature, "d-1"))).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Delivery(signature, "d-1"))).AssertStatusAsync(200); // GitHub's redelivery
        // The delivery id is not signed: the same captured bytes resent under a new id are still a repeat.
        var replayed = await (await _anonymous.SendAsync(Delivery(signature, "d-forged"))).AssertStatusAsync(200);
        Assert.Equal(1, replayed.GetProperty("duplicates").GetInt32());
        await (await _anonymous.SendAsync(Delivery("sha256=" + new string('0', 64), "d-2"))).AssertProblemAsync(401);
        var single = Assert.Single(await Webhooks.EventsAsync(hook));
        Assert.Equal("issues", single.GetProperty("event_type").GetString());
        Assert.Equal("sha256:" + Webhooks.Hex(SHA256.HashData(Encoding.UTF8.GetBytes(body))), single.GetProperty("external_id").GetString());
    }

    [Fact]
    public async Task Zoom_and_Slack_answer_their_url_challenges_only_when_signed_and_name_events_by_their_bodies()
    {
        var team = await server.TeamAsync();
        var zoom = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "zoom" }), providedSecret: "zoom-secret-token-1");
        const string validation = """{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}""";
        var answer = await (await _anonymous.SendAsync(Webhooks.Zoom(zoom, validation))).AssertStatusAsync(200);
        Assert.Equal("qgg8vlvZRS6UYooatFL8Aw", answer.GetProperty("plainToken").GetString());
        Assert.Equal(Webhooks.Hex(HMACSHA256.HashData("zoom-secret-token-1"u8.ToArray(), "qgg8vlvZRS6UYooatFL8Aw"u8.ToArray())), answer.GetProperty("encryptedToken").GetString());
        await (await _anonymous.SendAsync(Webhooks.Post(zoom.Path, validation))).AssertProblemAsync(401); // unsigned challenges are refused
        Assert.Equal(0, await StoredAsync(zoom));
        const string recording = """{"event":"recording.completed","event_ts":1700000000001,"payload":{"object":{"uuid":"abc=="}}}""";
        await (await _anonymous.SendAsync(Webhooks.Zoom(zoom, recording))).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Webhooks.Zoom(zoom, recording))).AssertStatusAsync(200); // a retried delivery: same bytes, same event
        var zoomEvent = Assert.Single(await Webhooks.EventsAsync(zoom));
        Assert.Equal("recording.completed", zoomEvent.GetProperty("event_type").GetString());
        Assert.StartsWith("sha256:", zoomEvent.GetProperty("external_id").GetString(), StringComparison.Ordinal);

        var slack = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "slack" }), providedSecret: "8f742231b10e8888abcd99yyyzzz85a5");
        var challenge = await (await _anonymous.SendAsync(Webhooks.VersionZero(slack, """{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}""",
            "x-slack-signature", "x-slack-request-timestamp"))).AssertStatusAsync(200);
        Assert.Equal("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", challenge.GetProperty("challenge").GetString());
        await (await _anonymous.SendAsync(Webhooks.VersionZero(slack, """{"token":"legacy-verification-token","type":"event_callback","event_id":"Ev1","event":{"type":"message","text":"hi"}}""",
            "x-slack-signature", "x-slack-request-timestamp"))).AssertStatusAsync(200);
        var slackEvent = Assert.Single(await Webhooks.EventsAsync(slack));
        Assert.Equal("message", slackEvent.GetProperty("event_type").GetString());
        Assert.Equal("Ev1", slackEvent.GetProperty("external_id").GetString());
        var slackFull = await (await team.Viewer.Http.GetAsync($"{slack.EventsUrl}/{slackEvent.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.False(slackFull.GetProperty("payload").TryGetProperty("token", out _)); // Slack's legacy verification token is not kept
        await (await _anonymous.SendAsync(Webhooks.VersionZero(slack with { Secret = "wrong-secret-123" }, """{"type":"event_callback","event_id":"Ev2"}""",
            "x-slack-signature", "x-slack-request-timestamp"))).AssertProblemAsync(401);
    }

    [Fact]
    public async Task Graph_validation_echoes_the_token_and_each_notification_needs_the_client_state()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(new { verify = "graph" }));
        var echo = await _anonymous.SendAsync(new HttpRequestMessage(HttpMethod.Post, hook.Path + "?validationToken=Validation%3A%20Testing%20client%20application%20reachability"));
        Assert.Equal(HttpStatusCode.OK, echo.StatusCode);
        Assert.Equal("text/plain", echo.Content.Headers.ContentType!.MediaType);
        Assert.Equal("Validation: Testing client application reachability", await echo.Content.ReadAsStringAsync());

        string Notifications(params (string State, string Change)[] items) => JsonSerializer.Serialize(new
        {
            value = items.Select((n, i) => new
            {
                subscriptionId = "sub-1",
                clientState = n.State,
                changeType = n.Change,
                resource = $"communications/onlineMeetings/m1/transcripts/t{i}",
                tenantId = "tenant",
            }),
        });
        var accepted = await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, Notifications((hook.Secret!, "created"), (hook.Secret!, "updated"))))).AssertStatusAsync(202);
        Assert.Equal(2, accepted.GetProperty("stored").GetInt32());
        // The clientState is the endpoint's secret: it is not kept with the events that members read.
        var created = (await Webhooks.EventsAsync(hook)).First(e => e.GetProperty("event_type").GetString() == "created");
        var full = await (await hook.Team.Viewer.Http.GetAsync($"{hook.EventsUrl}/{created.GetProperty("id").GetString()}")).AssertStatusAsync(200);
        Assert.False(full.GetProperty("payload").TryGetProperty("clientState", out _));
        Assert.Equal("sub-1", full.GetProperty("payload").GetProperty("subscriptionId").GetString());
        Assert.DoesNotContain(hook.Secret!, full.ToString(), StringComparison.Ordinal);
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, Notifications((hook.Secret!, "created"), ("forged", "created"))))).AssertProblemAsync(401);
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, """{"value":[{"changeType":"created"}]}"""))).AssertProblemAsync(401);
        var lifecycle = JsonSerializer.Serialize(new { value = new[] { new { subscriptionId = "sub-1", clientState = hook.Secret, lifecycleEvent = "reauthorizationRequired" } } });
        await (await _anonymous.SendAsync(Webhooks.Post(hook.Path, lifecycle))).AssertStatusAsync(202);
        var types = (await Webhooks.EventsAsync(hook)).Select(e => e.GetProperty("event_type").GetString()).Order().ToList();
        Assert.Equal(["created", "reauthorizationRequired", "updated"], types);
    }

    [Fact]
    public async Task A_generic_hmac_is_verified_as_the_manifest_describes_it()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(new
        {
            verify = "hmac",
            hmac = new { header = "X-Acme-Signature", algorithm = "sha512", encoding = "base64", prefix = "sig=", signed = "{timestamp}:{id}:{body}", timestamp_header = "X-Acme-Time", id_header = "X-Acme-Id" },
            event_type = "{{ event.payload.kind }}.{{ event.headers['x-acme-topic'] }}",
        }));
        const string body = """{"kind":"order","id":5}""";
        HttpRequestMessage Signed(string id, long at, string secret)
        {
            var request = Webhooks.Post(hook.Path, body);
            request.Headers.Add("X-Acme-Time", at.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add("X-Acme-Id", id);
            request.Headers.Add("X-Acme-Topic", "created");
            request.Headers.Add("X-Acme-Signature", "sig=" + Convert.ToBase64String(HMACSHA512.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{at}:{id}:{body}"))));
            return request;
        }
        await (await _anonymous.SendAsync(Signed("e-1", Webhooks.Now, hook.Secret!))).AssertStatusAsync(200);
        await (await _anonymous.SendAsync(Signed("e-2", Webhooks.Now - 3600, hook.Secret!))).AssertProblemAsync(401);
        await (await _anonymous.SendAsync(Signed("e-3", Webhooks.Now, "whsec_other"))).AssertProblemAsync(401);
        var stored = Assert.Single(await Webhooks.EventsAsync(hook));
        Assert.Equal("order.created", stored.GetProperty("event_type").GetString());
        Assert.Equal("e-1", stored.GetProperty("external_id").GetString());
        Assert.Equal("hmac", stored.GetProperty("verification").GetString());
        var headers = (await (await team.Viewer.Http.GetAsync($"{hook.EventsUrl}/{stored.GetProperty("id").GetString()}")).AssertStatusAsync(200)).GetProperty("headers");
        Assert.Equal("created", headers.GetProperty("x-acme-topic").GetString());
        Assert.False(headers.TryGetProperty("x-acme-signature", out _));
    }

    [Fact]
    public async Task Bodies_beyond_the_in_flight_budget_answer_503_and_a_body_that_does_not_arrive_answers_408()
    {
        var team = await server.TeamAsync();
        var hook = await Webhooks.CreateAsync(team, Webhooks.Manifest(StandardHooks));
        // Seventeen requests announce 64 KiB each and send one byte: sixteen fill the test server's 1 MiB budget, so
        // one of them (whichever comes last) is refused at once with 503; the others wait for their bodies until
        // PLUGBOARD_WEBHOOK_BODY_SECONDS (3 s here) and get 408.
        var stalled = new List<System.Net.Sockets.TcpClient>();
        try
        {
            for (var i = 0; i < 17; i++)
            {
                var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
                await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(
                    $"POST {hook.Path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{{"));
                stalled.Add(client);
            }
            var statuses = await Task.WhenAll(stalled.Select(async client =>
            {
                using var reader = new StreamReader(client.GetStream(), leaveOpen: true);
                return await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));
            }));
            Assert.Equal(1, statuses.Count(line => line?.StartsWith("HTTP/1.1 503", StringComparison.Ordinal) == true));
            Assert.Equal(16, statuses.Count(line => line?.StartsWith("HTTP/1.1 408", StringComparison.Ordinal) == true));
        }
        finally
        {
            stalled.ForEach(c => c.Dispose());
        }
        // Their share of the budget came back; none of them stored anything.
        await (await _anonymous.SendAsync(Webhooks.Standard(hook, """{"type":"after"}"""))).AssertStatusAsync(200);
        Assert.Single(await Webhooks.EventsAsync(hook));
    }
}
