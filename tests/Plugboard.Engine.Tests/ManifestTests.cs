using System.Text.Json.Nodes;
using Plugboard.Engine.Manifests;
using Plugboard.Engine.Running;
using Plugboard.Testing;

namespace Plugboard.Engine.Tests;

public sealed class ManifestTests
{
    internal static string RepoFile(string relative)
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "Directory.Build.props")))
        {
            dir = Path.GetDirectoryName(dir)!;
        }
        return Path.Combine(dir, relative);
    }

    [Theory]
    [InlineData("templates/generic-rest-api-key.yaml")]
    [InlineData("templates/oauth2-api.yaml")]
    public void Official_templates_parse_with_zero_issues(string file)
    {
        var result = ManifestParser.Parse(File.ReadAllText(RepoFile(file)), "/manifest");
        Assert.Empty(result.Issues);
        Assert.NotNull(result.Manifest);
        Assert.Equal(1, result.Manifest.Version);
    }

    [Fact]
    public void ToYaml_reads_back_to_the_same_json_for_every_template_in_the_schemas_field_order_and_for_strings_that_look_like_other_types()
    {
        var files = Directory.GetFiles(RepoFile("templates"), "*.yaml");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var json = ManifestParser.Parse(File.ReadAllText(file), "/manifest").Json!.AsObject();
            // As jsonb gives it back: top-level keys in another order than written.
            var reordered = new JsonObject(json.Reverse().Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));
            var yaml = ManifestParser.ToYaml(reordered);
            Assert.True(JsonNode.DeepEquals(json, ManifestParser.Parse(yaml).Json), file);
            Assert.StartsWith("version: 1\n", yaml, StringComparison.Ordinal);
            Assert.Contains("\nsteps:\n  - id: ", yaml, StringComparison.Ordinal); // block style, not JSON in disguise
        }
        var tricky = JsonNode.Parse("""
            {"a": "100", "b": "true", "c": "", "d": "null", "e": "{{ x }}", "f": "line1\nline2", "g": "- not a list", "h": 1.5, "i": false, "j": null,
             "k": ["#hash", "key: value", " padded "], "l": {}, "m": []}
            """)!;
        Assert.Equal(tricky.ToJsonString(), ManifestParser.Parse(ManifestParser.ToYaml(tricky)).Json!.ToJsonString());
    }

    // Built once: the schema has an $id, which JsonSchema.Net registers globally.
    private static readonly Lazy<Json.Schema.JsonSchema> Published = new(() => Json.Schema.JsonSchema.FromText(ManifestSchema.Json));

    /// <summary>Validates with a maintained JSON Schema implementation (JsonSchema.Net, draft 2020-12): the published schema.</summary>
    private static List<string> SchemaErrors(JsonNode schema, JsonNode? instance)
    {
        Assert.Equal(JsonNode.Parse(ManifestSchema.Json)!.ToJsonString(), schema.ToJsonString());
        var evaluation = Published.Value
            .Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(instance), new Json.Schema.EvaluationOptions { OutputFormat = Json.Schema.OutputFormat.List });
        return evaluation.IsValid ? [] : [.. (evaluation.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))];
    }

    [Theory]
    [InlineData("templates/generic-rest-api-key.yaml")]
    [InlineData("templates/oauth2-api.yaml")]
    public void Published_schema_accepts_the_template_files_and_their_manifests(string file)
    {
        var schema = JsonNode.Parse(ManifestSchema.Json)!;
        Assert.Equal("https://json-schema.org/draft/2020-12/schema", (string?)schema["$schema"]);
        var document = ManifestParser.Parse(File.ReadAllText(RepoFile(file))).Json!; // the whole file
        Assert.Empty(SchemaErrors(schema, document));
        Assert.Empty(SchemaErrors(schema, document["manifest"]));
    }

    [Fact]
    public void Published_schema_rejects_what_the_parser_rejects()
    {
        var schema = JsonNode.Parse(ManifestSchema.Json)!;
        Assert.Empty(SchemaErrors(schema, ManifestParser.Parse(Valid).Json));
        Assert.NotEmpty(SchemaErrors(schema, ManifestParser.Parse(Valid.Replace("for_each:", "for_every:")).Json));
        Assert.NotEmpty(SchemaErrors(schema, ManifestParser.Parse(Valid.Replace("version: 1", "version: 3")).Json));
        Assert.NotEmpty(SchemaErrors(schema, JsonNode.Parse("""{"version":1,"base_url":"x","auth":{"type":"bearer"},"steps":[{"id":"a","request":{"path":"/"}}]}""")));
    }

    private const string Valid = """
        version: 1
        base_url: https://api.example.com
        steps:
          - id: search
            request: { method: GET, path: /search }
            extract: { ids: "$.items[*].id" }
          - id: details
            for_each: steps.search.ids
            request: { method: GET, path: "/items/{{ item }}" }
            extract: { record: "$" }
        output:
          records: "{{ steps.details.record }}"
        """;

    [Fact]
    public void Valid_manifest_has_no_issues_in_yaml_and_json()
    {
        var yaml = ManifestParser.Parse(Valid);
        Assert.Empty(yaml.Issues);
        var json = ManifestParser.Parse(yaml.Json!.ToJsonString());
        Assert.Empty(json.Issues);
        Assert.Empty(ManifestParser.Parse(yaml.Json).Issues);
        Assert.Equal("steps.search.ids", json.Manifest!.Steps[1].ForEach);
    }

    [Fact]
    public void Unknown_step_reference_is_reported_with_pointer_line_and_column()
    {
        var issue = Assert.Single(ManifestParser.Parse(Valid.Replace("steps.details.record", "steps.detail.record")).Issues);
        Assert.Equal("/output/records", issue.Pointer);
        Assert.Contains("unknown step 'detail'", issue.Message);
        Assert.Equal(12, issue.Line);
        Assert.Equal(12, issue.Column);
    }

    [Fact]
    public void Forward_reference_and_self_reference_are_cycles()
    {
        var forward = ManifestParser.Parse(Valid.Replace("path: /search", "path: \"/search/{{ steps.details.record }}\""));
        var issue = Assert.Single(forward.Issues);
        Assert.Equal("/steps/0/request/path", issue.Pointer);
        Assert.Contains("runs later", issue.Message);
        Assert.Equal(5, issue.Line);

        var self = ManifestParser.Parse(Valid.Replace("for_each: steps.search.ids", "for_each: steps.details.record"));
        issue = Assert.Single(self.Issues);
        Assert.Equal("/steps/1/for_each", issue.Pointer);
        Assert.Contains("itself", issue.Message);
        Assert.Equal(8, issue.Line);
    }

    [Fact]
    public void Unknown_extraction_of_a_known_step_is_reported()
    {
        var issue = Assert.Single(ManifestParser.Parse(Valid.Replace("steps.search.ids", "steps.search.idz")).Issues);
        Assert.Equal("/steps/1/for_each", issue.Pointer);
        Assert.Contains("no extraction 'idz'", issue.Message);
    }

    [Fact]
    public void Bad_jsonpath_is_reported_with_its_place()
    {
        var issue = Assert.Single(ManifestParser.Parse(Valid.Replace("\"$.items[*].id\"", "\"$.items[*\"")).Issues);
        Assert.Equal("/steps/0/extract/ids", issue.Pointer);
        Assert.Contains("Invalid JSONPath", issue.Message);
        Assert.Equal(6, issue.Line);
    }

    [Fact]
    public void Template_syntax_errors_unknown_fields_duplicate_ids_and_versions_are_reported()
    {
        var issues = ManifestParser.Parse("""
            version: 2
            base_url: "{{ config.base_url "
            colour: red
            steps:
              - id: a
                request: { method: GET, path: /a, verb: x }
              - id: a
                request: { method: GET, path: /b }
            """).Issues;
        Assert.Contains(issues, i => i.Pointer == "/version" && i.Message.Contains("version 2"));
        Assert.Contains(issues, i => i.Pointer == "/base_url" && i.Message.Contains("syntax"));
        Assert.Contains(issues, i => i.Pointer == "/colour" && i.Message.Contains("Unknown field") && i.Line == 3);
        Assert.Contains(issues, i => i.Pointer == "/steps/0/request/verb" && i.Line == 6);
        Assert.Contains(issues, i => i.Pointer == "/steps/1/id" && i.Message.Contains("Duplicate"));
    }

    /// <summary>
    /// The structure of a manifest is the published schema's: each of these breaks one schema rule (unknown field,
    /// type, required, enumeration, range, pattern, a conditional requirement) and the parser reports exactly that,
    /// at its pointer, with what the schema allows — and the published schema refuses the same document.
    /// </summary>
    [Theory]
    [InlineData("steps: [{ id: a, request: { path: /a }, colour: red }]", "/steps/0/colour", "Unknown field 'colour'; allowed here: id, when, for_each")]
    [InlineData("auth: { type: bearer, token: '{{ credentials.t }}', colour: 5 }", "/auth/colour", "Unknown field 'colour'; allowed here: type, token.")]
    [InlineData("auth: { type: api_key, name: X-Key }", "/auth/value", "'value' is required.")]
    [InlineData("auth: { type: kerberos }", "/auth/type", "must be one of none, api_key, bearer")]
    [InlineData("steps: [{ id: a, request: { path: /a, method: FETCH } }]", "/steps/0/request/method", "must be one of GET")]
    [InlineData("steps: [{ id: a, concurrency: 65, request: { path: /a } }]", "/steps/0/concurrency", "'concurrency' must be between 1 and 64.")]
    [InlineData("steps: [{ id: a b, request: { path: /a } }]", "/steps/0/id", "A step id starts with a letter")]
    [InlineData("steps: [{ id: a, request: { path: /a }, paginate: { type: cursor, cursor_param: c } }]", "/steps/0/paginate/cursor_path", "'cursor_path' is required.")]
    [InlineData("steps: [{ id: a, request: { path: /a }, extract: { 'x y': '$.a' } }]", "/steps/0/extract/x y", "An extraction name starts with a letter")]
    [InlineData("steps: [{ id: a, request: { path: /a, body: { json: {}, text: t } } }]", "/steps/0/request/body", "exactly one of 'json', 'form' or 'text'")]
    [InlineData("steps: []", "/steps", "at least 1 item")]
    [InlineData("allowed_hosts: example.com", "/allowed_hosts", "'allowed_hosts' must be an array, not a string.")]
    public void Structure_is_checked_by_the_published_schema(string change, string pointer, string message)
    {
        var yaml = "version: 1\nbase_url: https://api.example.com\n" + (change.StartsWith("steps:", StringComparison.Ordinal) ? change : change + "\nsteps: [{ id: a, request: { path: /a } }]");
        var result = ManifestParser.Parse(yaml);
        Assert.Null(result.Manifest);
        var issue = Assert.Single(result.Issues, i => i.Pointer == pointer);
        Assert.Contains(message, issue.Message);
        Assert.NotEmpty(SchemaErrors(JsonNode.Parse(ManifestSchema.Json)!, result.Json));
    }

    [Fact]
    public void Integers_are_read_however_they_are_written_and_out_of_range_ones_are_refused()
    {
        var json = ManifestParser.Parse("""
            {"version": 1.0, "base_url": "https://api.example.com",
             "steps": [{"id": "a", "request": {"path": "/a"}, "timeout_seconds": 30.0, "expect_status": [200, 404.0],
                        "paginate": {"type": "offset", "limit": 5e1}}]}
            """);
        Assert.Empty(json.Issues);
        var step = json.Manifest!.Steps[0];
        Assert.Equal(30, step.TimeoutSeconds);
        Assert.Equal([200, 404], step.ExpectStatus!);
        Assert.Equal(50, step.Paginate!.Limit);
        var huge = ManifestParser.Parse("version: 1\nbase_url: https://x.example\nsteps: [{ id: a, request: { path: /a }, paginate: { type: offset, limit: 3000000000 } }]");
        Assert.Null(huge.Manifest);
        Assert.Contains(huge.Issues, i => i.Pointer == "/steps/0/paginate/limit");
    }

    [Fact]
    public void Fields_given_as_null_count_as_absent_and_methods_may_be_title_case()
    {
        var result = ManifestParser.Parse("""
            version: 1
            base_url: https://api.example.com
            allowed_hosts:
            auth:
            steps:
              - id: a
                request: { method: Get, path: /a, headers: }
                extract:
                retry:
            """);
        Assert.Empty(result.Issues);
        Assert.Equal("GET", result.Manifest!.Steps[0].Request.Method);
        Assert.Contains(ManifestParser.Parse("version: 1\nbase_url: https://x.example\nsteps:").Issues, i => i.Pointer == "/steps" && i.Message == "'steps' is required.");
    }

    [Fact]
    public void Wrong_types_and_defaults_of_the_wrong_type_are_reported()
    {
        var issues = ManifestParser.Parse("""
            version: 1
            base_url: https://x.example
            inputs:
              limit: { type: integer, required: true, default: "ten" }
            steps:
              - id: a
                timeout_seconds: soon
                request: { method: GET, path: /a }
            """).Issues;
        Assert.Contains(issues, i => i.Pointer == "/inputs/limit/default" && i.Message.Contains("integer"));
        Assert.Contains(issues, i => i.Pointer == "/steps/0/timeout_seconds" && i.Message.Contains("integer"));
    }

    [Fact]
    public void Literal_secrets_are_reported()
    {
        var issues = ManifestParser.Parse("""
            version: 1
            base_url: https://x.example
            auth: { type: bearer, token: "hunter2-literal" }
            steps:
              - id: a
                request: { method: GET, path: /a, headers: { Authorization: "Bearer abcdef" } }
            """).Issues;
        Assert.Contains(issues, i => i.Pointer == "/auth/token" && i.Line == 3);
        Assert.Contains(issues, i => i.Pointer == "/steps/0/request/headers/Authorization");
    }

    [Fact]
    public void Yaml_syntax_errors_carry_line_and_column()
    {
        var issue = Assert.Single(ManifestParser.Parse("version: 1\nsteps:\n  - id: a\n   bad: [\n").Issues);
        Assert.NotNull(issue.Line);
        Assert.Contains("YAML", issue.Message);
    }

    [Fact]
    public async Task Missing_required_inputs_fail_the_run_before_any_request()
    {
        var result = await Engine.RunAsync("""
            version: 1
            base_url: http://127.0.0.1:9
            inputs:
              query: { type: string, required: true }
              limit: { type: integer, default: 10 }
            steps:
              - id: a
                request: { method: GET, path: /a }
            """, inputs: new JsonObject { ["limit"] = "ten" });
        Assert.Equal(RunStatus.Failed, result.Status);
        Assert.Contains("missing required input 'query'", result.Error);
        Assert.Contains("'limit' must be integer", result.Error);
        Assert.Empty(result.Log);
    }

    [Fact]
    public void Yaml_anchors_and_aliases_are_refused_before_anything_expands()
    {
        var result = ManifestParser.Parse(HostileInput.AliasBomb());
        Assert.True(result.Refused);
        var issue = Assert.Single(result.Issues);
        Assert.Equal("/a0", issue.Pointer);
        Assert.Equal(3, issue.Line);
        Assert.Contains("Anchors", issue.Message, StringComparison.Ordinal);
        Assert.Null(result.Json);
        // A plain alias (without the anchor being reached first, e.g. a forward reference) is refused too.
        var alias = ManifestParser.Parse("version: 1\nbase_url: *x\n");
        Assert.True(alias.Refused);
        Assert.Contains("Aliases", Assert.Single(alias.Issues).Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => ManifestParser.ReadDocument(HostileInput.AliasBomb()));
    }

    [Fact]
    public void Manifest_size_depth_and_node_count_are_capped()
    {
        var deep = ManifestParser.Parse("version: 1\nsteps: " + new string('[', 100) + new string(']', 100) + "\n");
        Assert.True(deep.Refused);
        Assert.Contains("deeper than 64", Assert.Single(deep.Issues).Message, StringComparison.Ordinal);
        var wide = ManifestParser.Parse("version: 1\nsteps: [" + string.Join(",", Enumerable.Repeat("1", ManifestLimits.MaxNodes + 1)) + "]\n");
        Assert.True(wide.Refused);
        Assert.StartsWith("/steps/", Assert.Single(wide.Issues).Pointer, StringComparison.Ordinal);
        var large = ManifestParser.Parse("version: 1\n#" + new string('x', ManifestLimits.MaxTextChars) + "\n");
        Assert.True(large.Refused);
        Assert.Contains("more than the limit", Assert.Single(large.Issues).Message, StringComparison.Ordinal);
        // JSON that the YAML reader refuses (here for a comment) is read as JSON, under the same limits; a duplicate key
        // is an issue of its own.
        var duplicate = ManifestParser.Parse("{\"version\": 1, \"version\": 2}");
        Assert.Contains("version", Assert.Single(duplicate.Issues).Message, StringComparison.Ordinal);
        var wideJson = ManifestParser.Parse("{\"version\": 1, /* c */ \"steps\": [" + string.Join(",", Enumerable.Repeat("1", ManifestLimits.MaxNodes + 1)) + "]}");
        Assert.True(wideJson.Refused);
        Assert.Contains($"more than {ManifestLimits.MaxNodes} values", Assert.Single(wideJson.Issues).Message, StringComparison.Ordinal);
        var deepJson = ManifestParser.Parse("{\"version\": 1, /* c */ \"steps\": " + new string('[', 100) + new string(']', 100) + "}");
        Assert.True(deepJson.Refused);
        Assert.Contains("deeper than 64", Assert.Single(deepJson.Issues).Message, StringComparison.Ordinal);
        // Within the limits, nothing changes.
        Assert.False(ManifestParser.Parse(Valid).Refused);
        Assert.Empty(ManifestParser.Parse(Valid).Issues);
    }

    [Fact]
    public void The_manifest_reference_example_is_a_valid_manifest()
    {
        var text = File.ReadAllText(RepoFile("docs/manifest-reference.md"));
        var start = text.IndexOf("```yaml\n", StringComparison.Ordinal) + "```yaml\n".Length;
        var yaml = text[start..text.IndexOf("```", start, StringComparison.Ordinal)];
        var result = ManifestParser.Parse(yaml);
        Assert.True(result.Issues.Count == 0, string.Join("\n", result.Issues.Select(i => $"{i.Pointer}: {i.Message}")));
        Assert.Equal(3, result.Manifest!.Steps.Count);
    }
}
