using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Net;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public sealed class SecurityTests
{
    private const string Canary = "CANARY-cred-8f3k2j";
    private const string LoopbackAndLocalhost = "127.0.0.1/32,::1/128";

    private static Task<Stub> Elsewhere() => Stub.StartAsync(app => app.Map("/{**rest}", () => Results.Json(new { data = new[] { 9 } })));

    private static string ApiKeyManifest(string baseUrl, string step, string allowedHosts = "[]") => $$$"""
        version: 1
        base_url: "{{{baseUrl}}}"
        allowed_hosts: {{{allowedHosts}}}
        auth: { type: api_key, in: header, name: X-API-Key, value: "{{ credentials.key }}" }
        steps:
          - id: s
        {{{step}}}
        """;

    [Fact]
    public async Task Credentials_are_not_sent_to_another_host_on_redirect()
    {
        await using var other = await Elsewhere();
        var otherUrl = $"http://localhost:{other.Port}";
        await using var api = await Stub.StartAsync(app => app.MapGet("/start", () => Results.Redirect($"{otherUrl}/landing")));
        var result = await Engine.RunAsync(ApiKeyManifest(api.Url, "    request: { method: GET, path: /start }\n    extract: { data: \"$.data\" }"),
            new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Engine.Succeeded(result);
        Assert.Equal(Canary, api.Requests.Single().Headers["X-API-Key"]);
        var landed = Assert.Single(other.Requests);
        Assert.False(landed.Headers.ContainsKey("X-API-Key"));
        Assert.Equal([302, 200], result.Log.Select(l => l.Status));

        // The same redirect to a host listed in allowed_hosts carries the credential.
        var allowed = await Engine.RunAsync(ApiKeyManifest(api.Url, "    request: { method: GET, path: /start }", "[localhost]"),
            new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Engine.Succeeded(allowed);
        Assert.Equal(Canary, other.Requests.Last().Headers["X-API-Key"]);
    }

    [Fact]
    public async Task Credentials_are_not_sent_to_another_host_by_next_url_or_absolute_url()
    {
        await using var other = await Elsewhere();
        await using var api = await Stub.StartAsync(app => app.MapGet("/r", () =>
            Results.Json(new { data = new[] { 1 }, next = $"http://localhost:{other.Port}/page2" })));
        var result = await Engine.RunAsync(ApiKeyManifest(api.Url, """
                request: { method: GET, path: /r }
                extract: { data: "$.data[*]" }
                paginate: { type: next_url, next_url_path: "$.next", max_pages: 2 }
            """), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Engine.Succeeded(result);
        Assert.False(Assert.Single(other.Requests).Headers.ContainsKey("X-API-Key"));

        var absolute = await Engine.RunAsync(ApiKeyManifest(api.Url, $"    request: {{ method: GET, url: \"http://localhost:{other.Port}/abs\" }}"),
            new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Engine.Succeeded(absolute);
        Assert.False(other.Requests.Last().Headers.ContainsKey("X-API-Key"));
    }

    public static TheoryData<string, string> CredentialPlacements() => new()
    {
        { "header", """request: { method: GET, url: "OTHER/h", headers: { X-Leak: "{{ credentials.key }}" } }""" },
        { "query", """request: { method: GET, url: "OTHER/q", query: { k: "{{ credentials.key }}" } }""" },
        { "json body", """request: { method: POST, url: "OTHER/j", body: { json: { k: "{{ credentials.key }}" } } }""" },
        { "form body", """request: { method: POST, url: "OTHER/f", body: { form: { k: "{{ credentials.key }}" } } }""" },
        { "text body", """request: { method: POST, url: "OTHER/t", body: { text: "key={{ credentials.key }}" } }""" },
        { "absolute url", """request: { method: GET, url: "OTHER/u/{{ credentials.key }}" }""" },
        { "url from a credential", """request: { method: GET, url: "{{ credentials.elsewhere }}/x" }""" },
        // Transformed beyond recognition: refused because the template read a credential, not because of its text.
        { "transformed header", """request: { method: GET, url: "OTHER/h", headers: { X-Leak: "{{ credentials.key | split: '' | join: '.' }}" } }""" },
    };

    [Theory]
    [MemberData(nameof(CredentialPlacements))]
    public async Task Step_requests_carrying_credentials_are_refused_for_hosts_outside_allowed_hosts(string placement, string request)
    {
        await using var other = await Elsewhere();
        var otherUrl = $"http://localhost:{other.Port}";
        await using var api = await Elsewhere();
        var step = "    " + request.Replace("OTHER", otherUrl, StringComparison.Ordinal);
        var credentials = new Dictionary<string, string> { ["key"] = Canary, ["elsewhere"] = otherUrl };
        var result = await Engine.RunAsync(ApiKeyManifest(api.Url, step), credentials, allow: LoopbackAndLocalhost);
        Assert.True(result.Status == RunStatus.Failed, placement);
        Assert.Contains("refused to send a request to 'localhost'", result.Error, StringComparison.Ordinal);
        Assert.Contains("allowed_hosts", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, result.Error, StringComparison.Ordinal);
        Assert.Empty(other.Requests);

        // Listed in allowed_hosts, the same request is sent.
        var allowed = await Engine.RunAsync(ApiKeyManifest(api.Url, step, "[localhost]"), credentials, allow: LoopbackAndLocalhost);
        Engine.Succeeded(allowed);
        Assert.Single(other.Requests);
    }

    [Fact]
    public async Task A_disguised_secret_in_a_url_is_masked_in_the_step_log_and_errors()
    {
        await using var api = await Stub.StartAsync(app => app.MapGet("/{**rest}", () => Results.StatusCode(500)));
        var result = await Engine.RunAsync(ApiKeyManifest(api.Url,
            "    retry: { max_attempts: 1 }\n    request: { method: GET, path: /q, query: { k: \"{{ credentials.key | split: '' | join: '.' }}\", plain: visible } }"),
            new() { ["key"] = Canary });
        Assert.Equal(RunStatus.Failed, result.Status);
        var disguised = string.Join(".", Canary.ToCharArray());
        Assert.Contains("k=" + Uri.EscapeDataString(disguised), api.Requests.Single().PathAndQuery, StringComparison.Ordinal); // the API got it
        var logged = Assert.Single(result.Log).Url;
        Assert.Contains("k=***", logged, StringComparison.Ordinal);
        Assert.Contains("plain=visible", logged, StringComparison.Ordinal);
        Assert.DoesNotContain(Uri.EscapeDataString(disguised), result.Error + logged, StringComparison.Ordinal);
        Assert.DoesNotContain(disguised, result.Error + logged, StringComparison.Ordinal);

        var inPath = await Engine.RunAsync(ApiKeyManifest(api.Url,
            "    retry: { max_attempts: 1 }\n    request: { method: GET, path: \"/p/{{ credentials.key | split: '' | join: '.' }}\" }"), new() { ["key"] = Canary });
        Assert.Equal($"{api.Url}/***", Assert.Single(inPath.Log).Url);
        Assert.DoesNotContain(disguised, inPath.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Credentials_of_an_https_api_are_never_sent_over_plain_http()
    {
        await using var plain = await Elsewhere();
        // base_url is https on the same host name: the step's http URL to that host would downgrade.
        var result = await Engine.RunAsync(ApiKeyManifest("https://127.0.0.1:1",
            $$$"""    request: { method: GET, url: "http://127.0.0.1:{{{plain.Port}}}/x", headers: { X-Leak: "{{ credentials.key }}" } }"""), new() { ["key"] = Canary });
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("never sent over plain http", result.Error, StringComparison.Ordinal);
        Assert.Empty(plain.Requests);
    }

    [Fact]
    public async Task Credentials_in_step_headers_do_not_follow_a_redirect_to_another_host()
    {
        await using var other = await Elsewhere();
        var otherUrl = $"http://localhost:{other.Port}";
        await using var api = await Stub.StartAsync(app =>
        {
            app.MapGet("/302", () => Results.Redirect($"{otherUrl}/landing"));
            app.MapPost("/307", () => Results.Redirect($"{otherUrl}/landing", permanent: false, preserveMethod: true));
            app.MapPost("/308", () => Results.Redirect($"{otherUrl}/landing", permanent: true, preserveMethod: true));
            app.MapGet("/leaky", () => Results.Redirect($"{otherUrl}/landing?k={Canary}"));
        });
        const string headers = """headers: { X-Leak: "{{ credentials.key }}", X-Plain: "kept" }""";
        var get = await Engine.RunAsync(ApiKeyManifest(api.Url, $$"""    request: { method: GET, path: /302, {{headers}} }"""), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Engine.Succeeded(get);
        var landed = Assert.Single(other.Requests);
        Assert.False(landed.Headers.ContainsKey("X-Leak"));
        Assert.False(landed.Headers.ContainsKey("X-API-Key"));
        Assert.Equal("kept", landed.Headers["X-Plain"]);
        Assert.Equal(Canary, api.Requests.Single().Headers["X-Leak"]);

        // 307/308 keep the method and the body: a body built from a credential is refused, a plain one goes without the header.
        foreach (var status in new[] { "307", "308" })
        {
            var before = other.Requests.Count;
            var withSecretBody = await Engine.RunAsync(ApiKeyManifest(api.Url,
                $$$"""    request: { method: POST, path: /{{{status}}}, {{{headers}}}, body: { json: { k: "{{ credentials.key }}" } } }"""), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
            Assert.Equal(RunStatus.Failed, withSecretBody.Status);
            Assert.Contains("(after a redirect)", withSecretBody.Error, StringComparison.Ordinal);
            Assert.Equal(before, other.Requests.Count);
            var plainBody = await Engine.RunAsync(ApiKeyManifest(api.Url,
                $$"""    request: { method: POST, path: /{{status}}, {{headers}}, body: { json: { k: "v" } } }"""), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
            Engine.Succeeded(plainBody);
            var posted = other.Requests.Last();
            Assert.Equal("POST", posted.Method);
            Assert.False(posted.Headers.ContainsKey("X-Leak"));
            Assert.Equal("""{"k":"v"}""", posted.Body);
        }
        var count = other.Requests.Count;
        // A redirect whose URL itself carries the secret is refused.
        var leaky = await Engine.RunAsync(ApiKeyManifest(api.Url, "    request: { method: GET, path: /leaky }"), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
        Assert.Equal(RunStatus.Failed, leaky.Status);
        Assert.Contains("its URL carries credential material", leaky.Error, StringComparison.Ordinal);
        Assert.Equal(count, other.Requests.Count);
    }

    [Fact]
    public async Task Pages_on_another_host_get_no_credential_carrying_request()
    {
        await using var other = await Elsewhere();
        var otherUrl = $"http://localhost:{other.Port}";
        await using var api = await Stub.StartAsync(app =>
        {
            app.MapGet("/next", () => Results.Json(new { data = new[] { 1 }, next = $"{otherUrl}/page2" }));
            app.MapGet("/link", (HttpContext c) =>
            {
                c.Response.Headers.Link = $"<{otherUrl}/page2>; rel=\"next\"";
                return Results.Json(new { data = new[] { 1 } });
            });
        });
        foreach (var (path, paginate) in new[] { ("/next", """{ type: next_url, next_url_path: "$.next", max_pages: 3 }"""), ("/link", "{ type: link, max_pages: 3 }") })
        {
            var result = await Engine.RunAsync(ApiKeyManifest(api.Url, $$$"""
                    request: { method: GET, path: {{{path}}}, headers: { X-Leak: "{{ credentials.key }}" } }
                    extract: { data: "$.data[*]" }
                    paginate: {{{paginate}}}
                """), new() { ["key"] = Canary }, allow: LoopbackAndLocalhost);
            Assert.Equal(RunStatus.Failed, result.Status);
            Assert.Contains("'localhost'", result.Error, StringComparison.Ordinal);
            Assert.Empty(other.Requests);
        }
    }

    [Fact]
    public async Task Tokens_obtained_by_the_auth_scheme_go_only_to_credential_hosts()
    {
        await using var other = await Elsewhere();
        await using var api = await Stub.StartAsync(app =>
        {
            app.MapPost("/token", () => Results.Json(new { access_token = "OBTAINED-token-7781", expires_in = 3600 }));
            app.MapGet("/me", () => Results.Json(new { echoed = "OBTAINED-token-7781" }));
        });
        // The token comes back in a response body and a later step puts it into a request to another host.
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{api.Url}}}"
            auth: { type: oauth2_client_credentials, token_url: "{{{api.Url}}}/token", client_id: "{{ credentials.client_id }}", client_secret: "{{ credentials.client_secret }}" }
            steps:
              - id: me
                request: { method: GET, path: /me }
                extract: { echoed: "$.echoed" }
              - id: out
                request: { method: GET, url: "http://localhost:{{{other.Port}}}/x", query: { t: "{{ steps.me.echoed }}" } }
            """, new() { ["client_id"] = "client-0001", ["client_secret"] = Canary }, allow: LoopbackAndLocalhost);
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("'localhost'", result.Error, StringComparison.Ordinal);
        Assert.Empty(other.Requests);

        // A token endpoint outside base_url's host and allowed_hosts gets no client secret either.
        var foreignToken = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{api.Url}}}"
            auth: { type: oauth2_client_credentials, token_url: "http://localhost:{{{other.Port}}}/token", client_id: "{{ credentials.client_id }}", client_secret: "{{ credentials.client_secret }}" }
            steps:
              - id: me
                request: { method: GET, path: /me }
            """, new() { ["client_id"] = "client-0001", ["client_secret"] = Canary }, allow: LoopbackAndLocalhost);
        Assert.Equal(RunStatus.Failed, foreignToken.Status);
        Assert.Contains("its body carries credential material", foreignToken.Error, StringComparison.Ordinal);
        Assert.Empty(other.Requests);
    }

    [Fact]
    public async Task Canary_credentials_and_obtained_tokens_never_appear_in_logs_errors_or_exceptions()
    {
        const string accessToken = "ACCESS-obtained-5521";
        await using var api = await Stub.StartAsync(app =>
        {
            app.MapPost("/token", () => Results.Json(new { access_token = accessToken, expires_in = 3600 }));
            app.MapGet("/echo", (HttpRequest r) => Results.Json(new
            {
                headers = r.Headers.ToDictionary(h => h.Key, h => h.Value.ToString()),
                url = $"{r.Path}{r.QueryString}",
                secret = Canary,
            }));
            app.MapGet("/redirect", (HttpRequest r) => Results.Redirect($"/fail?token={accessToken}&signature=sig-value-123"));
            app.MapGet("/fail", (HttpRequest r) => Results.Text($"<html>denied for {r.Headers.Authorization} {Canary} {r.QueryString}</html>", statusCode: 500));
        });
        var observed = new List<StepLogEntry>();
        var manifest = Engine.Manifest($$$"""
            version: 1
            base_url: "{{{api.Url}}}"
            auth: { type: oauth2_client_credentials, token_url: "{{{api.Url}}}/token", client_id: "{{ credentials.client_id }}", client_secret: "{{ credentials.client_secret }}" }
            steps:
              - id: echo
                request: { method: GET, path: /echo, query: { api_key: "{{ credentials.client_secret }}", q: "{{ credentials.client_id }}" } }
                extract: { secret: "$.secret" }
              - id: fail
                retry: { max_attempts: 2 }
                request: { method: GET, path: /redirect }
            output:
              secret: "{{ steps.echo.secret }}"
            """);
        var runner = new ConnectorRunner(Engine.Client(), Engine.FastOptions);
        var result = await runner.RunAsync(manifest, new RunRequest([], [], new Dictionary<string, string> { ["client_id"] = "client-id-canary", ["client_secret"] = Canary }),
            new Observer(observed), CancellationToken.None);
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("HTTP 500", result.Error);
        Assert.True(result.Log.Count >= 5);
        var everything = string.Join("\n", result.Log.Concat(observed).Select(l => $"{l.Url} {l.ResponseBody} {l.Error}")) + result.Error;
        foreach (var secret in new[] { Canary, accessToken, "client-id-canary", "sig-value-123", Uri.EscapeDataString(Canary) })
        {
            Assert.DoesNotContain(secret, everything);
        }
        Assert.Contains("***", everything);
    }

    [Fact]
    public async Task A_secret_echoed_into_the_output_is_masked_at_any_depth()
    {
        await using var api = await Stub.StartAsync(app => app.MapGet("/echo", (HttpRequest r) => Results.Json(new
        {
            items = new object[] { new { key = r.Headers["X-Key"].ToString() }, new[] { "plain", $"in a list: {r.Headers["X-Key"]}" } },
        })));
        var result = await RunEchoAsync(api.Url, """
                extract: { items: "$.items", first: "$.items[0].key", text: "$.items[1][1]" }
            output:
              nested: { all: "{{ steps.echo.items }}", list: ["{{ steps.echo.first }}", { deeper: ["x {{ steps.echo.text }} y"] }] }
            """);
        Engine.Succeeded(result);
        var output = result.Output!.ToJsonString();
        Assert.DoesNotContain(Canary, output);
        Assert.Equal("***", (string?)result.Output!["nested"]!["list"]![0]);
        Assert.Equal("x in a list: *** y", (string?)result.Output!["nested"]!["list"]![1]!["deeper"]![0]);
        Assert.Equal("in a list: ***", (string?)result.Output!["nested"]!["all"]![1]![1]);
        Assert.Equal("***", (string?)result.Output!["nested"]!["all"]![0]!["key"]);
    }

    [Fact]
    public async Task A_secret_echoed_as_a_key_of_the_output_is_masked_too()
    {
        await using var api = await Stub.StartAsync(app => app.MapGet("/echo", (HttpRequest r) => Results.Content(
            $$$"""{"byKey":{"{{{r.Headers["X-Key"]}}}":"value","other {{{r.Headers["X-Key"]}}}":"also","***":"taken"}}""", "application/json")));
        var result = await RunEchoAsync(api.Url, """
                extract: { byKey: "$.byKey" }
            """);
        Engine.Succeeded(result);
        Assert.DoesNotContain(Canary, result.Output!.ToJsonString());
        var byKey = result.Output!["echo"]!["byKey"]!.AsObject();
        Assert.Equal(["***", "*** (2)", "other ***"], byKey.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(("value", "also", "taken"), ((string?)byKey["*** (2)"], (string?)byKey["other ***"], (string?)byKey["***"]));
    }

    [Fact]
    public async Task Without_an_output_section_the_steps_returned_are_masked_too()
    {
        await using var api = await Stub.StartAsync(app => app.MapGet("/echo", (HttpRequest r) => Results.Json(new { echoed = new[] { $"key {r.Headers["X-Key"]}" } })));
        var result = await RunEchoAsync(api.Url, """
                extract: { echoed: "$.echoed" }
            """);
        Engine.Succeeded(result);
        Assert.DoesNotContain(Canary, result.Output!.ToJsonString());
        Assert.Equal("key ***", (string?)result.Output!["echo"]!["echoed"]![0]);
    }

    /// <summary>One step <c>echo</c> (GET /echo with the Canary as its X-Key header), then <paramref name="rest"/>: its extract and the output.</summary>
    private static Task<RunResult> RunEchoAsync(string url, string rest) => Engine.RunAsync($$$"""
        version: 1
        base_url: "{{{url}}}"
        auth: { type: api_key, in: header, name: X-Key, value: "{{ credentials.key }}" }
        steps:
          - id: echo
            request: { method: GET, path: /echo }
        """ + "\n" + rest, new Dictionary<string, string> { ["key"] = Canary });

    private sealed class Observer(List<StepLogEntry> entries) : IRunObserver
    {
        public ValueTask OnStepAsync(StepLogEntry entry, CancellationToken ct)
        {
            lock (entries)
            {
                entries.Add(entry);
            }
            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public void Redactor_masks_secret_values_and_secret_looking_parameters()
    {
        var redactor = new Redactor(["abc", "topsecret1"]);
        Assert.Equal("abc *** ***", redactor.Redact("abc topsecret1 " + Uri.EscapeDataString("topsecret1")));
        Assert.Equal("https://x/y?page=2&access_token=***&client_secret=***&sig=***", redactor.Redact("https://x/y?page=2&access_token=zz&client_secret=yy&sig=qq"));
        Assert.Equal("failed: *** ---> inner ***", redactor.Redact(new InvalidOperationException("failed: topsecret1", new IOException("inner topsecret1"))));
        // A secret inside a longer one: the longer is replaced first, whichever was added first.
        var nested = new Redactor(["token-1234"]);
        nested.Add("token-1234-extended");
        Assert.Equal("x *** y *** z", nested.Redact("x token-1234-extended y token-1234 z"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(6)]
    public void Redactor_finds_every_encoded_form_of_one_secret_or_of_many(int count)
    {
        // One secret with a slash and quotes has six forms (searched one by one); six secrets have thirty-six (one multi-string search).
        var secrets = Enumerable.Range(0, count).Select(i => $"s3cr/t+{i} \"q\"").ToArray();
        var redactor = new Redactor(secrets);
        foreach (var secret in secrets)
        {
            // Newtonsoft's JSON escaping (\") is how request bodies carry it; System.Text.Json's (\u0022) how responses may.
            string[] forms = [secret, Uri.EscapeDataString(secret), System.Text.Json.JsonEncodedText.Encode(secret).ToString(),
                Newtonsoft.Json.JsonConvert.ToString(secret)[1..^1], Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(secret)), secret.Replace("/", "\\/", StringComparison.Ordinal)];
            foreach (var form in forms)
            {
                Assert.True(redactor.ContainsSecret($"before {form} after"), form);
                Assert.Equal("before *** after", redactor.RedactSecretValues($"before {form} after"));
            }
        }
        Assert.False(redactor.ContainsSecret("s3cr/t+ nothing here"));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("[::1]")]
    [InlineData("[::ffff:127.0.0.1]")]
    public async Task Loopback_is_refused_before_any_connection(string host)
    {
        await using var stub = await Elsewhere();
        using var client = Engine.Client(allow: "");
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"http://{host}:{stub.Port}/x"));
        Assert.IsType<SsrfBlockedException>(ex.InnerException);
        Assert.Contains("PLUGBOARD_OUTBOUND_ALLOW", ex.InnerException!.Message);
        Assert.Empty(stub.Requests);
    }

    [Fact]
    public async Task The_tenant_is_not_told_which_internal_address_a_name_resolved_to_but_the_operator_is()
    {
        await using var stub = await Elsewhere();
        var seen = new List<string>();
        using var client = new HttpClient(SsrfGuard.CreateHandler(new SsrfOptions { OnBlocked = (host, address, reason) => seen.Add($"{host} {address} {reason}") }));
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"http://localhost:{stub.Port}/x"));
        var blocked = Assert.IsType<SsrfBlockedException>(ex.InnerException);
        Assert.Contains("'localhost'", blocked.Message, StringComparison.Ordinal);
        Assert.Contains("not allowed", blocked.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", blocked.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("::1", blocked.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("loopback", blocked.Message, StringComparison.Ordinal);
        var logged = Assert.Single(seen);
        Assert.Matches(@"^localhost (127\.0\.0\.1|::1) loopback$", logged);
        Assert.Empty(stub.Requests);
    }

    [Fact]
    public async Task An_explicit_proxy_gets_only_requests_whose_target_passed_the_guard()
    {
        await using var proxy = await Stub.StartAsync(app => app.MapGet("/{**rest}", () => Results.Json(new { via = "proxy" })));
        using var client = new HttpClient(SsrfGuard.CreateHandler(SsrfOptions.FromList("127.0.0.2/32", new Uri(proxy.Url))));
        // A blocked target is refused before anything reaches the proxy.
        var ex = await Assert.ThrowsAsync<SsrfBlockedException>(() => client.GetAsync("http://10.1.2.3/latest/meta-data/"));
        Assert.Contains("'10.1.2.3'", ex.Message, StringComparison.Ordinal);
        Assert.Empty(proxy.Requests);
        // An allowed target goes through the proxy (absolute-form request), not to the target directly.
        var answer = await client.GetStringAsync("http://127.0.0.2:9/through");
        Assert.Contains("proxy", answer, StringComparison.Ordinal);
        Assert.Equal("/through", Assert.Single(proxy.Requests).PathAndQuery);
    }

    [Theory]
    [InlineData("10.0.0.1")]
    [InlineData("169.254.169.254")]
    [InlineData("192.168.1.1")]
    [InlineData("100.64.0.1")]
    [InlineData("[fd00:ec2::254]")]
    public async Task Private_and_metadata_addresses_are_refused_without_connecting(string host)
    {
        using var client = Engine.Client(allow: "");
        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"http://{host}/latest/meta-data/"));
        Assert.IsType<SsrfBlockedException>(ex.InnerException);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"took {watch.Elapsed}");
    }

    [Fact]
    public void Address_checks_cover_mapped_and_special_ranges()
    {
        var none = new SsrfOptions();
        foreach (var blocked in new[] { "0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2001:db8::1", "198.51.100.7", "64:ff9b::7f00:1",
                     "2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", "64:ff9b:1::808:808", "64:ff9b:1:ffff::1", "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe" })
        {
            Assert.NotNull(SsrfGuard.Check(IPAddress.Parse(blocked), none));
        }
        foreach (var open in new[] { "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808", "::ffff:0:808:808" })
        {
            Assert.Null(SsrfGuard.Check(IPAddress.Parse(open), none));
        }
        Assert.Null(SsrfGuard.Check(IPAddress.Parse("127.0.0.1"), SsrfOptions.FromList("127.0.0.1/32")));
        Assert.Null(SsrfGuard.Check(IPAddress.Parse("::ffff:127.0.0.1"), SsrfOptions.FromList("127.0.0.1/32")));
        Assert.NotNull(SsrfGuard.Check(IPAddress.Parse("127.0.0.2"), SsrfOptions.FromList("127.0.0.1/32")));
    }

    [Fact]
    public async Task Allowed_loopback_is_reached_but_a_redirect_to_a_blocked_address_is_refused()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/ok", () => Results.Json(new { ok = true }));
            app.MapGet("/meta", () => Results.Redirect("http://169.254.169.254/latest/meta-data/"));
        });
        using var client = Engine.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"{stub.Url}/ok")).StatusCode);

        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: s
                request: { method: GET, path: /meta }
            """);
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("'169.254.169.254'", result.Error);
        Assert.Contains("not allowed", result.Error);
        Assert.Equal(2, result.Log.Count); // the redirect, then the refused hop; not retried
    }

    [Fact]
    public async Task Non_http_schemes_are_refused()
    {
        var result = await Engine.RunAsync("""
            version: 1
            base_url: "http://127.0.0.1:9"
            steps:
              - id: s
                request: { method: GET, url: "file:///etc/passwd" }
            """);
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("only http and https", result.Error);
        Assert.Empty(result.Log);
    }
}
