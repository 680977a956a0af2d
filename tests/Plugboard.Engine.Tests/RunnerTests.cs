using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Plugboard.Engine.Running;

namespace Plugboard.Engine.Tests;

public sealed class RunnerTests
{
    private static string Single(string baseUrl, string step, string output = "\"{{ steps.s.items }}\"") => $$$"""
        version: 1
        base_url: "{{{baseUrl}}}"
        steps:
          - id: s
        {{{step}}}
        output:
          items: {{{output}}}
        """;

    private static int[] Items(RunResult result) => result.Output!["items"]!.AsArray().Select(n => (int)n!).ToArray();

    [Fact]
    public async Task Offset_pagination_stops_on_an_empty_page()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", (int limit, int offset) =>
            Results.Json(new { data = Enumerable.Range(offset, Math.Max(0, Math.Min(limit, 5 - offset))) })));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.data[*]" }
                paginate: { type: offset, limit: 2 }
            """));
        Engine.Succeeded(result);
        Assert.Equal([0, 1, 2, 3, 4], Items(result));
        Assert.Equal(4, stub.Requests.Count); // 2 + 2 + 1 + empty
        Assert.Equal("/r?limit=2&offset=4", stub.Requests.ElementAt(2).PathAndQuery);
    }

    [Theory]
    [InlineData("application/json; charset=iso-8859-1", false, false)]
    [InlineData("application/json;format=x; Charset=\"ISO-8859-1\" ;q=1", false, false)]
    [InlineData("application/json; charset=iso-8859-1", false, true)]
    [InlineData("application/json", true, false)]
    [InlineData("application/json", true, true)]
    public async Task Bodies_are_read_by_their_charset_and_a_UTF8_byte_order_mark_is_skipped(string contentType, bool bom, bool chunked)
    {
        var encoding = contentType.Contains("iso-8859-1", StringComparison.OrdinalIgnoreCase) ? System.Text.Encoding.Latin1 : System.Text.Encoding.UTF8;
        var body = (bom ? System.Text.Encoding.UTF8.Preamble.ToArray() : []).Concat(encoding.GetBytes("""{"name":"Zoë Ångström"}""")).ToArray();
        // Announced length (read straight into an array of that size) or chunked (no Content-Length: a growing buffer).
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", async (HttpContext http) =>
        {
            http.Response.ContentType = contentType;
            if (!chunked)
            {
                http.Response.ContentLength = body.Length;
                await http.Response.Body.WriteAsync(body);
                return;
            }
            await http.Response.StartAsync(); // headers out before the body: sent chunked
            await http.Response.Body.WriteAsync(body.AsMemory(0, 5));
            await http.Response.Body.FlushAsync();
            await http.Response.Body.WriteAsync(body.AsMemory(5));
        }));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.name" }
            """));
        Engine.Succeeded(result);
        Assert.Equal("Zoë Ångström", (string?)result.Output!["items"]);
        Assert.Equal(body.Length, result.Log.Single().Bytes);
    }

    [Fact]
    public async Task A_HEAD_response_announcing_a_length_has_an_empty_body()
    {
        await using var stub = await Stub.StartAsync(app => app.MapMethods("/r", ["HEAD"], (HttpContext http) =>
        {
            http.Response.ContentType = "application/json";
            http.Response.ContentLength = 1234; // the length a GET would have; a HEAD response carries no body
            return Task.CompletedTask;
        }));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: HEAD, path: /r }
                extract: { items: "$.items" }
            """));
        Engine.Succeeded(result);
        Assert.Null((string?)result.Output!["items"]);
        var entry = Assert.Single(result.Log);
        Assert.Equal(200, entry.Status);
        Assert.Equal("", entry.ResponseBody);
    }

    [Fact]
    public async Task Page_pagination_with_size_and_max_pages()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", (int p, int per) => Results.Json(new { data = new[] { p * 10, p * 10 + 1 }, per })));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.data[*]" }
                paginate: { type: page, page_param: p, start: 0, size_param: per, size: 2, max_pages: 3 }
            """));
        Engine.Succeeded(result);
        Assert.Equal([0, 1, 10, 11, 20, 21], Items(result));
        Assert.Equal(3, stub.Requests.Count);
        Assert.Equal("/r?p=2&per=2", stub.Requests.Last().PathAndQuery);
    }

    [Fact]
    public async Task Cursor_pagination_follows_the_cursor_until_it_is_absent()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", (string? after) => after switch
        {
            null => Results.Json(new { data = new[] { 1 }, next = "c2" }),
            "c2" => Results.Json(new { data = new[] { 2 }, next = "c3" }),
            _ => Results.Json(new { data = new[] { 3 }, next = (string?)null }),
        }));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.data[*]" }
                paginate: { type: cursor, cursor_param: after, cursor_path: "$.next" }
            """));
        Engine.Succeeded(result);
        Assert.Equal([1, 2, 3], Items(result));
        Assert.Equal(["/r", "/r?after=c2", "/r?after=c3"], stub.Requests.Select(r => r.PathAndQuery));
    }

    [Fact]
    public async Task Link_header_pagination()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", (HttpContext c, int? page) =>
        {
            var p = page ?? 1;
            if (p < 3)
            {
                c.Response.Headers.Link = $"</r?page={p + 1}>; rel=\"next\", </r?page=1>; rel=\"first\"";
            }
            return Results.Json(new { data = new[] { p } });
        }));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.data[*]" }
                paginate: { type: link }
            """));
        Engine.Succeeded(result);
        Assert.Equal([1, 2, 3], Items(result));
    }

    [Fact]
    public async Task Next_url_pagination_and_max_pages_stop()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", (HttpContext c, int? page) =>
            Results.Json(new { data = new[] { page ?? 0 }, links = new { next = $"http://127.0.0.1:{c.Connection.LocalPort}/r?page={(page ?? 0) + 1}" } })));
        var result = await Engine.RunAsync(Single(stub.Url, """
                request: { method: GET, path: /r }
                extract: { items: "$.data[*]" }
                paginate: { type: next_url, next_url_path: "$.links.next", max_pages: 4 }
            """));
        Engine.Succeeded(result);
        Assert.Equal([0, 1, 2, 3], Items(result));
        Assert.Equal(4, stub.Requests.Count);
    }

    [Fact]
    public async Task For_each_fans_out_with_bounded_concurrency()
    {
        var current = 0;
        var peak = 0;
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/ids", () => Results.Json(new { ids = Enumerable.Range(1, 12) }));
            app.MapGet("/item/{id:int}", async (int id) =>
            {
                var now = Interlocked.Increment(ref current);
                InterlockedMax(ref peak, now);
                await Task.Delay(50);
                Interlocked.Decrement(ref current);
                return Results.Json(new { value = id * 100 });
            });
        });
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            steps:
              - id: search
                request: { method: GET, path: /ids }
                extract: { ids: "$.ids[*]" }
              - id: detail
                for_each: steps.search.ids
                concurrency: 3
                request: { method: GET, path: "/item/{{ item }}", headers: { X-Index: "{{ index }}" } }
                extract: { value: "$.value" }
            output:
              items: "{{ steps.detail.value }}"
            """);
        Engine.Succeeded(result);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => i * 100).ToArray(), Items(result));
        Assert.Equal(3, peak);
        Assert.Contains(stub.Requests, r => r.Headers.GetValueOrDefault("X-Index") == "11");
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    [Fact]
    public async Task When_skips_steps_and_output_keeps_json_types()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", () => Results.Json(new { n = 3, ok = true, obj = new { a = 1 }, list = new[] { "x", "y" } })));
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            inputs:
              include: { type: boolean, default: false }
            steps:
              - id: get
                request: { method: GET, path: /r }
                extract: { n: "$.n", ok: "$.ok", obj: "$.obj", list: "$.list", missing: "$.nope" }
              - id: skipped
                when: "{{ inputs.include }}"
                request: { method: GET, path: /never }
            output:
              n: "{{ steps.get.n }}"
              ok: "{{ steps.get.ok }}"
              obj: "{{ steps.get.obj }}"
              list: "{{ steps.get.list }}"
              missing: "{{ steps.get.missing }}"
              text: "n={{ steps.get.n }}"
              size: "{{ steps.get.list | size }}"
              when: "{{ now | date: '%Y' }}"
              nested: { values: ["{{ steps.get.n | plus: 1 }}"] }
            """);
        Engine.Succeeded(result);
        var output = result.Output!;
        Assert.Equal(3, (int)output["n"]!);
        Assert.True((bool)output["ok"]!);
        Assert.Equal(1, (int)output["obj"]!["a"]!);
        Assert.Equal(["x", "y"], output["list"]!.AsArray().Select(n => (string)n!));
        Assert.Null(output["missing"]);
        Assert.Equal("n=3", (string?)output["text"]);
        Assert.Equal(2, (int)output["size"]!);
        Assert.Equal(DateTime.UtcNow.Year.ToString(), (string?)output["when"]);
        Assert.Equal(4, (int)output["nested"]!["values"]![0]!);
        Assert.Contains(result.Log, l => l.StepId == "skipped" && l.Skipped);
        Assert.Equal(0, stub.Count("/never"));
    }

    [Fact]
    public async Task Retries_429_honouring_retry_after_and_503_but_not_400()
    {
        var calls = new Dictionary<string, int>();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/{kind}", (HttpContext c, string kind) =>
        {
            int n;
            lock (calls)
            {
                n = calls[kind] = calls.GetValueOrDefault(kind) + 1;
            }
            if (kind == "limited" && n == 1)
            {
                c.Response.Headers.RetryAfter = "1";
                return Results.StatusCode(429);
            }
            if (kind == "flaky" && n < 3)
            {
                return Results.StatusCode(503);
            }
            return kind == "bad" ? Results.BadRequest(new { error = "nope" }) : Results.Json(new { items = new[] { n } });
        }));
        var watch = Stopwatch.StartNew();
        var limited = await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /limited }\n    extract: { items: \"$.items[*]\" }"));
        Engine.Succeeded(limited);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.95), $"waited only {watch.Elapsed}");
        Assert.Equal([1, 2], limited.Log.Select(l => l.Attempt));

        var flaky = await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /flaky }\n    retry: { max_attempts: 3 }\n    extract: { items: \"$.items[*]\" }"));
        Engine.Succeeded(flaky);
        Assert.Equal([503, 503, 200], flaky.Log.Select(l => l.Status));

        var bad = await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /bad }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.Failed, bad.Status);
        Assert.Contains("HTTP 400", bad.Error);
        Assert.Equal(1, calls["bad"]);
    }

    [Fact]
    public async Task Writes_are_not_retried_by_default_on_5xx_or_timeouts()
    {
        var calls = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        await using var stub = await Stub.StartAsync(app => app.Map("/{kind}", async (HttpContext c, string kind) =>
        {
            var n = calls.AddOrUpdate($"{c.Request.Method} {kind}", 1, (_, v) => v + 1);
            if (kind == "slow" && n == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), c.RequestAborted);
            }
            if (kind == "busy" && n == 1)
            {
                c.Response.Headers.RetryAfter = "0";
            }
            return n < 3 && kind != "slow" ? Results.StatusCode(503) : Results.Json(new { items = new[] { n } });
        }));
        foreach (var method in new[] { "POST", "PUT", "PATCH", "DELETE" })
        {
            var failing = await Engine.RunAsync(Single(stub.Url, $"    request: {{ method: {method}, path: /flaky }}\n    extract: {{ items: \"$.items[*]\" }}"));
            Assert.Equal(RunStatus.Failed, failing.Status);
            Assert.Contains("HTTP 503", failing.Error);
            Assert.Equal(1, calls[$"{method} flaky"]);
        }
        var timedOut = await Engine.RunAsync(Single(stub.Url, "    timeout_seconds: 1\n    request: { method: POST, path: /slow }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.TimedOut, timedOut.Status);
        Assert.Equal(1, calls["POST slow"]);
        // 429/503 with Retry-After says the request was not processed: retried.
        var busy = await Engine.RunAsync(Single(stub.Url, "    request: { method: POST, path: /busy }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.Failed, busy.Status); // the second 503 came without Retry-After
        Assert.Equal(2, calls["POST busy"]);
        // The same GET is retried through both 503s.
        Engine.Succeeded(await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /flaky }\n    extract: { items: \"$.items[*]\" }")));
        Assert.Equal(3, calls["GET flaky"]);
    }

    [Fact]
    public async Task A_write_with_an_idempotency_key_or_marked_idempotent_is_retried_with_the_same_key()
    {
        var keys = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var calls = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        await using var stub = await Stub.StartAsync(app => app.MapPost("/{kind}", (HttpContext c, string kind) =>
        {
            keys.Enqueue(c.Request.Headers["Idempotency-Key"].ToString());
            return calls.AddOrUpdate(kind, 1, (_, v) => v + 1) < 3 ? Results.StatusCode(500) : Results.Json(new { items = new[] { 1 } });
        }));
        var manifest = Engine.Manifest(Single(stub.Url,
            "    request: { method: POST, path: /keyed, headers: { Idempotency-Key: \"{{ execution.id }}-{{ step.id }}\" } }\n    extract: { items: \"$.items[*]\" }"));
        var runner = new ConnectorRunner(Engine.Client(), Engine.FastOptions);
        Engine.Succeeded(await runner.RunAsync(manifest, new RunRequest([], [], new Dictionary<string, string>()) { ExecutionId = "exec-42" }, null, default));
        Assert.Equal(["exec-42-s", "exec-42-s", "exec-42-s"], keys);
        Engine.Succeeded(await Engine.RunAsync(Single(stub.Url, "    retry: { idempotent: true }\n    request: { method: POST, path: /marked }\n    extract: { items: \"$.items[*]\" }")));
        Assert.Equal(3, calls["marked"]);
    }

    [Fact]
    public async Task A_write_that_was_redirected_is_not_sent_again_when_the_next_hop_fails()
    {
        var posts = 0;
        var gets = 0;
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/orders", () =>
            {
                Interlocked.Increment(ref posts);
                return Results.Redirect("/orders/1"); // 302 after a POST: the order exists, the client follows with GET
            });
            app.MapGet("/orders/1", (HttpContext c) =>
            {
                Interlocked.Increment(ref gets);
                c.Response.Headers.RetryAfter = "0";
                return Results.StatusCode(503);
            });
            app.MapPost("/x-keyed", (HttpContext c) => Interlocked.Increment(ref gets) < 3 ? Results.StatusCode(500) : Results.Json(new { items = new[] { 1 } }));
        });
        var result = await Engine.RunAsync(Single(stub.Url, "    request: { method: POST, path: /orders }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal(1, posts);
        Assert.Equal(1, gets);
        // X-Idempotency-Key counts as an idempotency key too.
        gets = 0;
        Engine.Succeeded(await Engine.RunAsync(Single(stub.Url,
            "    request: { method: POST, path: /x-keyed, headers: { X-Idempotency-Key: \"{{ execution.id }}-{{ step.id }}\" } }\n    extract: { items: \"$.items[*]\" }")));
        Assert.Equal(3, gets);
    }

    [Fact]
    public async Task A_refused_connection_is_retried_whatever_the_method()
    {
        int port;
        using (var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        } // closed again: connecting is refused
        var result = await Engine.RunAsync(Single($"http://127.0.0.1:{port}", "    retry: { max_attempts: 3 }\n    request: { method: POST, path: /x }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Equal([1, 2, 3], result.Log.Select(l => l.Attempt));
    }

    [Fact]
    public async Task Step_timeout_and_execution_timeout_end_as_timed_out()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/slow", async (HttpContext c) =>
        {
            await Task.Delay(TimeSpan.FromSeconds(10), c.RequestAborted);
            return Results.Json(new { items = new[] { 1 } });
        }));
        var step = await Engine.RunAsync(Single(stub.Url, "    timeout_seconds: 1\n    retry: { max_attempts: 2 }\n    request: { method: GET, path: /slow }\n    extract: { items: \"$.items[*]\" }"));
        Assert.Equal(RunStatus.TimedOut, step.Status);
        Assert.Contains("step timeout", step.Error);
        Assert.Equal(2, step.Log.Count);

        var watch = Stopwatch.StartNew();
        var execution = await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /slow }\n    extract: { items: \"$.items[*]\" }"),
            options: Engine.FastOptions with { ExecutionTimeout = TimeSpan.FromMilliseconds(700) });
        Assert.Equal(RunStatus.TimedOut, execution.Status);
        Assert.Contains("execution timeout", execution.Error);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Cancellation_aborts_the_request_in_flight()
    {
        var aborted = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        await using var stub = await Stub.StartAsync(app => app.MapGet("/slow", async (HttpContext c) =>
        {
            c.RequestAborted.Register(() => aborted.TrySetResult());
            started.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(30), c.RequestAborted);
            return Results.Ok();
        }));
        using var cts = new CancellationTokenSource();
        var run = Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /slow }\n    extract: { items: \"$.items\" }"), ct: cts.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cts.CancelAsync();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(RunStatus.Cancelled, result.Status);
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Response_size_cap_fails_the_step_with_a_clear_error()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapGet("/big", () => Results.Text(new string('x', 200_000)));
            app.MapGet("/chunked", async (HttpContext c) =>
            {
                for (var i = 0; i < 50; i++)
                {
                    await c.Response.WriteAsync(new string('y', 10_000));
                    await c.Response.Body.FlushAsync();
                }
            });
        });
        var options = Engine.FastOptions with { MaxResponseBytes = 100_000 };
        foreach (var path in new[] { "/big", "/chunked" })
        {
            var result = await Engine.RunAsync(Single(stub.Url, $"    request: {{ method: GET, path: {path} }}\n    extract: {{ items: \"$.items\" }}"), options: options);
            Assert.Equal(RunStatus.Failed, result.Status);
            Assert.Contains("100000 bytes", result.Error);
            Assert.Single(result.Log); // not retried
        }
    }

    [Fact]
    public async Task Error_when_turns_a_200_into_a_failure()
    {
        await using var stub = await Stub.StartAsync(app => app.MapGet("/r", () => Results.Json(new { ok = false, error = "quota exceeded" })));
        var result = await Engine.RunAsync(Single(stub.Url, "    request: { method: GET, path: /r }\n    error_when: \"$.error\"\n    extract: { items: \"$.items\" }"));
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("quota exceeded", result.Error);
    }

    [Fact]
    public async Task Chained_steps_body_and_inputs()
    {
        await using var stub = await Stub.StartAsync(app =>
        {
            app.MapPost("/search", async (HttpRequest r) =>
            {
                var body = await r.ReadFromJsonAsync<JsonObject>();
                return Results.Json(new { first = new { id = $"{body!["q"]}-{body["limit"]}" } });
            });
            app.MapGet("/items/{id}", (string id, string fields) => Results.Json(new { name = $"{id}:{fields}" }));
        });
        var result = await Engine.RunAsync($$$"""
            version: 1
            base_url: "{{{stub.Url}}}"
            inputs:
              q: { type: string, required: true }
              limit: { type: integer, default: 5 }
            steps:
              - id: search
                request: { method: POST, path: /search, body: { json: { q: "{{ inputs.q }}", limit: "{{ inputs.limit }}" } } }
                extract: { id: "$.first.id" }
              - id: get
                request: { method: GET, path: "/items/{{ steps.search.id | url_encode }}", query: { fields: "a b" } }
                extract: { name: "$.name" }
            output: "{{ steps.get.name }}"
            """, inputs: new JsonObject { ["q"] = "cats" });
        Engine.Succeeded(result);
        Assert.Equal("cats-5:a b", (string?)result.Output);
    }
}
