using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Fluid;
using Fluid.Ast;
using Fluid.Parser;
using Fluid.Values;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace Plugboard.Engine.Templating;

/// <summary>Thrown when a template cannot be parsed or rendered (syntax, step limit, output size).</summary>
public sealed class TemplateException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A parsed template. Strings without <c>{{</c> or <c>{%</c> are literals and never reach Fluid.</summary>
public sealed class CompiledTemplate
{
    internal CompiledTemplate(string source, IFluidTemplate? template, Expression? single)
    {
        Source = source;
        Template = template;
        SingleExpression = single;
    }

    public string Source { get; }
    internal IFluidTemplate? Template { get; }

    /// <summary>Set when the whole source is one <c>{{ expression }}</c>: evaluating it keeps the JSON type.</summary>
    internal Expression? SingleExpression { get; }

    public bool IsLiteral => Template is null;

    /// <summary>Set when the source is literal text and <c>{{ name.name… }}</c> paths only (no filters, tags or indexes):
    /// rendered by reading the model's JSON directly when every path holds a plain value (a string, an integer, a
    /// boolean, null or nothing), which is what most request templates and stream mappings are; Fluid renders the rest.</summary>
    internal TemplatePart[]? PlainParts { get; init; }
}

/// <summary>A piece of a plain template: literal text, or the path of a value.</summary>
internal readonly record struct TemplatePart(string? Text, string[]? Path);

/// <summary>
/// Records whether a render read <c>credentials</c> or <c>session</c>: whatever a template then does with the value
/// (filters, slicing, concatenation), the rendered text counts as carrying a secret. One instance per render.
/// </summary>
public sealed class SecretReads
{
    public bool Any { get; internal set; }
}

/// <summary>The variables a template sees. Everything is JSON (Newtonsoft tokens), exposed to Fluid read-only.</summary>
public sealed class TemplateModel
{
    // Created on first use: a run builds several models (pages, for_each items) that share these objects.
    private JObject? _inputsObject, _configObject, _stepsObject, _credentialsObject, _sessionObject;

    public JObject Inputs { get => _inputsObject ??= []; init => _inputsObject = value; }
    public JObject Config { get => _configObject ??= []; init => _configObject = value; }
    public JObject Steps { get => _stepsObject ??= []; init => _stepsObject = value; }
    public JObject Credentials { get => _credentialsObject ??= []; init => _credentialsObject = value; }
    public JObject Session { get => _sessionObject ??= []; init => _sessionObject = value; }
    public JObject? Page { get; init; }
    public JToken? Item { get; init; }

    /// <summary>The record a stream's mapping renders (<c>{{ record.id }}</c>).</summary>
    public JToken? Record { get; init; }

    /// <summary>What a sync tells its steps (<c>{{ sync.full_refresh }}</c>, <c>{{ sync.cursor.stream }}</c>); null outside syncs.</summary>
    public JObject? Sync { get; init; }

    /// <summary>The inbound webhook event a mapping renders (<c>{{ event.payload.id }}</c>, <c>{{ event.headers['x-github-event'] }}</c>).</summary>
    public JToken? Event { get; init; }
    public int? Index { get; init; }

    /// <summary>The execution's id (<c>{{ execution.id }}</c>): the same on every attempt of the execution, so it can key
    /// an Idempotency-Key header together with <c>{{ step.id }}</c>.</summary>
    public string? ExecutionId { get; init; }

    /// <summary>The id of the step being rendered (<c>{{ step.id }}</c>).</summary>
    public string? StepId { get; init; }

    /// <summary>The run's clock: fixed when the run starts so every template of a run sees the same <c>now</c>.</summary>
    public DateTimeOffset Now { get; init; } = DateTimeOffset.UtcNow;

    // Fluid views of the model, built once per model (they wrap the live JSON, so later step results are visible), and
    // kept apart: plain templates never read them, so a model that only plain templates render makes none.
    private sealed class FluidViews
    {
        public FluidValue? Inputs, Config, Steps, Credentials, Session, Page, Item, Record, Sync, Event, Now, Root;
    }

    private FluidViews? _views;
    private FluidViews Views => _views ??= new FluidViews();

    internal FluidValue InputsValue => Views.Inputs ??= TemplateEngine.ToFluid(Inputs);
    internal FluidValue ConfigValue => Views.Config ??= TemplateEngine.ToFluid(Config);
    internal FluidValue StepsValue => Views.Steps ??= TemplateEngine.ToFluid(Steps);
    internal FluidValue CredentialsValue => Views.Credentials ??= TemplateEngine.ToFluid(Credentials);
    internal FluidValue SessionValue => Views.Session ??= TemplateEngine.ToFluid(Session);
    internal FluidValue PageValue => Views.Page ??= Page is null ? NilValue.Instance : TemplateEngine.ToFluid(Page);
    internal FluidValue ItemValue => Views.Item ??= TemplateEngine.ToFluid(Item);
    internal FluidValue RecordValue => Views.Record ??= TemplateEngine.ToFluid(Record);
    internal FluidValue SyncValue => Views.Sync ??= TemplateEngine.ToFluid(Sync);
    internal FluidValue EventValue => Views.Event ??= TemplateEngine.ToFluid(Event);
    internal FluidValue NowValue => Views.Now ??= new DateTimeValue(Now);

    /// <summary>The template context's model: the top-level names resolve here, so a render sets no scope values.</summary>
    internal FluidValue RootValue => Views.Root ??= new DictionaryValue(new RootIndexable(this, null));

    /// <summary>A root for one render that notes any read of credentials or session in <paramref name="reads"/>.</summary>
    internal FluidValue TrackedRoot(SecretReads reads) => new DictionaryValue(new RootIndexable(this, reads));

    /// <summary>The JSON behind a top-level name, as the Fluid root sees it (a read of credentials or session noted in
    /// <paramref name="reads"/>); false for the names that are not JSON (index, now, execution, step) and unknown ones.</summary>
    internal bool TryGetJsonRoot(string name, SecretReads? reads, out JToken? value)
    {
        if (reads is not null && name is "credentials" or "session")
        {
            reads.Any = true;
        }
        value = name switch
        {
            "inputs" => Inputs,
            "config" => Config,
            "steps" => Steps,
            "credentials" => Credentials,
            "session" => Session,
            "page" => Page,
            "item" => Item,
            "record" => Record,
            "sync" => Sync,
            "event" => Event,
            _ => null,
        };
        return value is not null || name is "page" or "item" or "record" or "sync" or "event";
    }

    private static DictionaryValue IdObject(string? id) =>
        new(new FluidValueDictionaryFluidIndexable(new Dictionary<string, FluidValue> { ["id"] = id is null ? NilValue.Instance : new StringValue(id) }));

    private sealed class RootIndexable(TemplateModel model, SecretReads? reads) : IFluidIndexable
    {
        private static readonly string[] Names = ["inputs", "config", "steps", "credentials", "session", "page", "item", "index", "now", "execution", "step", "record", "sync", "event"];

        public int Count => Names.Length;
        public IEnumerable<string> Keys => Names;

        public bool TryGetValue(string name, out FluidValue value)
        {
            if (reads is not null && name is "credentials" or "session")
            {
                reads.Any = true;
            }
            FluidValue? found = name switch
            {
                "inputs" => model.InputsValue,
                "config" => model.ConfigValue,
                "steps" => model.StepsValue,
                "credentials" => model.CredentialsValue,
                "session" => model.SessionValue,
                "page" => model.PageValue,
                "item" => model.ItemValue,
                "index" => model.Index is { } i ? NumberValue.Create(i) : NilValue.Instance,
                "now" => model.NowValue,
                "execution" => IdObject(model.ExecutionId),
                "step" => IdObject(model.StepId),
                "record" => model.RecordValue,
                "sync" => model.SyncValue,
                "event" => model.EventValue,
                _ => null,
            };
            value = found ?? NilValue.Instance;
            return found is not null;
        }
    }

    /// <summary>A model that differs in the values given. It shares this one's JSON (and the Fluid views of what is
    /// unchanged): the steps object always (results recorded later are seen by both), the other roots as they are (they
    /// are never changed after a model is made, so one nobody has read yet is not created).</summary>
    public TemplateModel With(JObject? page = null, JToken? item = null, int? index = null, JObject? session = null, JObject? credentials = null,
        string? stepId = null, JToken? record = null) => new()
        {
            Record = record ?? Record,
            Sync = Sync,
            Event = Event,
            ExecutionId = ExecutionId,
            StepId = stepId ?? StepId,
            _inputsObject = _inputsObject,
            _configObject = _configObject,
            _stepsObject = Steps,
            _credentialsObject = credentials ?? _credentialsObject,
            _sessionObject = session ?? _sessionObject,
            Page = page ?? Page,
            Item = item ?? Item,
            Index = index ?? Index,
            Now = Now,
            _views = _views is not { } views ? null : new FluidViews
            {
                Inputs = views.Inputs,
                Config = views.Config,
                Steps = views.Steps,
                Credentials = credentials is null ? views.Credentials : null,
                Session = session is null ? views.Session : null,
                Page = page is null ? views.Page : null,
                Item = item is null ? views.Item : null,
                Record = record is null ? views.Record : null,
                Sync = views.Sync,
                Event = views.Event,
                Now = views.Now,
            },
        };
}

/// <summary>
/// Sandboxed Liquid (Fluid): no file system, no CLR member access (the model is JSON converted to Fluid values),
/// a step limit, a recursion limit and a cap on the rendered size. A connector's templates compute values, they do
/// not run programs: only <c>if</c>, <c>unless</c>, <c>case</c>, <c>raw</c> and comments are tags (no loops, no
/// variables, no includes), ranges are small literals, and every filter's result is size-checked, so no template can
/// grow a string or a list beyond <see cref="MaxIntermediateChars"/> / <see cref="MaxIntermediateItems"/> on its
/// way to the output. Parsed templates are cached by source.
/// </summary>
public sealed partial class TemplateEngine(int maxOutputChars)
{
    private const int MaxCachedTemplates = 10_000;
    public const int MaxIntermediateChars = 1024 * 1024;
    public const int MaxIntermediateItems = 100_000;
    public const int MaxRangeItems = 1_000;
    private static readonly string[] AllowedTags = ["if", "unless", "case", "raw", "comment", "#", "echo"];
    private static readonly FluidParser Parser = CreateParser();
    private static readonly ConcurrentDictionary<string, CompiledTemplate> Cache = new(StringComparer.Ordinal);
    private static readonly TemplateOptions Options = CreateOptions();

    public static bool TryCompile(string source, out CompiledTemplate template, out string? error)
    {
        if (IsLiteralText(source))
        {
            template = new CompiledTemplate(source, null, null);
            error = null;
            return true;
        }
        if (Cache.TryGetValue(source, out var cached))
        {
            template = cached;
            error = null;
            return true;
        }
        if (!Parser.TryParse(source, out var parsed, out error) || (error = RangeLimits.Check(parsed)) is not null)
        {
            template = new CompiledTemplate(source, null, null);
            return false;
        }
        Expression? single = null;
        if (parsed is FluidTemplate { Statements: [OutputStatement output] } && source.AsSpan().Trim().StartsWith("{{") && source.AsSpan().Trim().EndsWith("}}"))
        {
            single = output.Expression;
        }
        template = new CompiledTemplate(source, parsed, single) { PlainParts = PlainParts(source) };
        if (Cache.Count < MaxCachedTemplates)
        {
            Cache.TryAdd(source, template);
        }
        return true;
    }

    public static CompiledTemplate Compile(string source) =>
        TryCompile(source, out var template, out var error) ? template : throw new TemplateException($"Template syntax error in '{source}': {error}");

    /// <summary>Text without an output or a tag: rendered as itself.</summary>
    private static bool IsLiteralText(string source) =>
        source.IndexOf('{', StringComparison.Ordinal) < 0
        || (!source.Contains("{{", StringComparison.Ordinal) && !source.Contains("{%", StringComparison.Ordinal));

    public ValueTask<string> RenderAsync(string source, TemplateModel model, SecretReads? reads = null) =>
        IsLiteralText(source) ? ValueTask.FromResult(source) : RenderAsync(Compile(source), model, reads);

    public ValueTask<string> RenderAsync(CompiledTemplate template, TemplateModel model, SecretReads? reads = null)
    {
        if (template.Template is null)
        {
            return ValueTask.FromResult(template.Source);
        }
        return template.PlainParts is { } parts && RenderPlain(parts, model, reads) is { } plain ? ValueTask.FromResult(plain) : RenderWithFluidAsync(template, model, reads);
    }

    /// <summary>Renders through Fluid whatever the template is (the plain path's reference: tests compare the two).</summary>
    internal async ValueTask<string> RenderWithFluidAsync(CompiledTemplate template, TemplateModel model, SecretReads? reads = null)
    {
        if (template.Template is null)
        {
            return template.Source;
        }
        var writer = new BoundedWriter(maxOutputChars);
        try
        {
            await template.Template.RenderAsync(writer, NullEncoder.Default, CreateContext(model, reads)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not TemplateException and not OperationCanceledException)
        {
            throw new TemplateException($"Template '{template.Source}' failed: {ex.Message}", ex);
        }
        return writer.ToString();
    }

    /// <summary>Evaluates a template to JSON: a single <c>{{ expression }}</c> keeps its type, anything else is a string.</summary>
    public async ValueTask<JToken> EvaluateAsync(CompiledTemplate template, TemplateModel model, SecretReads? reads = null)
    {
        if (template.SingleExpression is null)
        {
            return new JValue(await RenderAsync(template, model, reads).ConfigureAwait(false));
        }
        if (template.PlainParts is [{ Path: { } path }] && PlainValue(path, model, reads) is { } plain)
        {
            return plain.Type is JTokenType.Null ? JValue.CreateNull() : new JValue(plain);
        }
        return await EvaluateWithFluidAsync(template, model, reads).ConfigureAwait(false);
    }

    /// <summary>Evaluates a single-expression template through Fluid (the plain path's reference: tests compare the two).</summary>
    internal async ValueTask<JToken> EvaluateWithFluidAsync(CompiledTemplate template, TemplateModel model, SecretReads? reads = null)
    {
        ArgumentNullException.ThrowIfNull(template.SingleExpression);
        FluidValue value;
        try
        {
            value = await template.SingleExpression.EvaluateAsync(CreateContext(model, reads)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not TemplateException and not OperationCanceledException)
        {
            throw new TemplateException($"Template '{template.Source}' failed: {ex.Message}", ex);
        }
        var json = FromFluid(value);
        if (json.Type == JTokenType.String && ((string)json!)!.Length > maxOutputChars)
        {
            throw new TemplateException($"Template output exceeds {maxOutputChars} characters.");
        }
        return json;
    }

    /// <summary>Evaluates every string leaf of a JSON tree as a template (objects and arrays keep their shape).</summary>
    public async ValueTask<JToken> EvaluateTreeAsync(JToken node, TemplateModel model, SecretReads? reads = null)
    {
        switch (node)
        {
            case JObject obj:
                var result = new JObject();
                foreach (var (key, value) in obj)
                {
                    result[key] = value is null ? JValue.CreateNull() : await EvaluateTreeAsync(value, model, reads).ConfigureAwait(false);
                }
                return result;
            case JArray array:
                var items = new JArray();
                foreach (var item in array)
                {
                    items.Add(await EvaluateTreeAsync(item, model, reads).ConfigureAwait(false));
                }
                return items;
            case JValue { Type: JTokenType.String } text:
                return await EvaluateAsync(Compile((string)text!), model, reads).ConfigureAwait(false);
            default:
                return node.DeepClone();
        }
    }

    // Members Fluid gives a meaning of its own (a dictionary's size, first, last; the empty and blank literals): such a
    // path is left to Fluid.
    private static readonly HashSet<string> FluidMembers = new(StringComparer.Ordinal) { "size", "first", "last", "empty", "blank" };
    private static readonly JValue Nothing = JValue.CreateNull();

    /// <summary>The parts of a template made of literal text and <c>{{ a.b.c }}</c> identifier paths only; null otherwise.</summary>
    private static TemplatePart[]? PlainParts(string source)
    {
        var parts = new List<TemplatePart>();
        var at = 0;
        while (at < source.Length)
        {
            var open = source.IndexOf("{{", at, StringComparison.Ordinal);
            var text = open < 0 ? source[at..] : source[at..open];
            if (text.Contains("{%", StringComparison.Ordinal) || text.Contains("}}", StringComparison.Ordinal) || text.Contains("%}", StringComparison.Ordinal))
            {
                return null;
            }
            if (text.Length > 0)
            {
                parts.Add(new TemplatePart(text, null));
            }
            if (open < 0)
            {
                break;
            }
            var close = source.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (close < 0 || PlainPath().Match(source, open + 2, close - open - 2) is not { Success: true } match)
            {
                return null;
            }
            var path = match.Groups[1].Value.Split('.');
            if (path.Any(FluidMembers.Contains))
            {
                return null;
            }
            parts.Add(new TemplatePart(null, path));
            at = close + 2;
        }
        return [.. parts];
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")]
    private static partial System.Text.RegularExpressions.Regex PlainPath();

    /// <summary>The text of a plain template when every path holds a plain value; null when Fluid must render it.</summary>
    private string? RenderPlain(TemplatePart[] parts, TemplateModel model, SecretReads? reads)
    {
        if (parts is [{ Path: { } only }])
        {
            return Text(PlainValue(only, model, reads));
        }
        var builder = new StringBuilder();
        foreach (var part in parts)
        {
            if (part.Text is { } text)
            {
                builder.Append(text);
            }
            else if (PlainValue(part.Path!, model, reads) is { } value)
            {
                builder.Append(Text(value));
            }
            else
            {
                return null;
            }
            if (builder.Length > maxOutputChars)
            {
                return null; // Fluid reports it
            }
        }
        return builder.ToString();

        static string? Text(JValue? value) => value?.Type switch
        {
            JTokenType.String => (string)value!,
            JTokenType.Integer => ((long)value).ToString(CultureInfo.InvariantCulture),
            JTokenType.Boolean => (bool)value ? "true" : "false",
            null => null,
            _ => "",
        };
    }

    /// <summary>
    /// The value a path reads, as Fluid would see it, when it is a string (within the output limit), an integer, a
    /// boolean, null or absent (<see cref="Nothing"/>); null when Fluid must evaluate it. Reading credentials or session
    /// is noted in <paramref name="reads"/>, as the Fluid root does.
    /// </summary>
    private JValue? PlainValue(string[] path, TemplateModel model, SecretReads? reads)
    {
        if (!model.TryGetJsonRoot(path[0], reads, out var current))
        {
            return null;
        }
        for (var i = 1; i < path.Length; i++)
        {
            switch (current)
            {
                case null or JValue { Type: JTokenType.Null }:
                    return Nothing; // a member of nil is nil
                case JObject obj:
                    if (!obj.TryGetValue(path[i], StringComparison.Ordinal, out current))
                    {
                        return Nothing;
                    }
                    break;
                default:
                    return null;
            }
        }
        return current switch
        {
            null => Nothing,
            JValue { Type: JTokenType.String } s when ((string)s!).Length <= maxOutputChars => s,
            JValue { Type: JTokenType.Integer } i when i.Value is long => i,
            JValue { Type: JTokenType.Boolean or JTokenType.Null } v => v,
            _ => null,
        };
    }

    private static TemplateContext CreateContext(TemplateModel model, SecretReads? reads) =>
        new(reads is null ? model.RootValue : model.TrackedRoot(reads), Options, allowModelMembers: false);

    private static FluidParser CreateParser()
    {
        var parser = new FluidParser(new FluidParserOptions { AllowFunctions = false, AllowLiquidTag = false });
        foreach (var tag in parser.RegisteredTags.Keys.Except(AllowedTags).ToList())
        {
            parser.RegisteredTags.Remove(tag);
        }
        return parser;
    }

    /// <summary>Ranges materialise every number they span: only literal ones of up to <see cref="MaxRangeItems"/> are allowed.</summary>
    private sealed class RangeLimits : AstVisitor
    {
        private string? _error;

        public static string? Check(IFluidTemplate template)
        {
            var visitor = new RangeLimits();
            visitor.VisitTemplate(template);
            return visitor._error;
        }

        protected override Expression VisitRangeExpression(RangeExpression rangeExpression)
        {
            if (rangeExpression.From is not LiteralExpression { Value: NumberValue from } || rangeExpression.To is not LiteralExpression { Value: NumberValue to }
                || Math.Abs(to.ToNumberValue() - from.ToNumberValue()) + 1 >= MaxRangeItems)
            {
                _error ??= $"a range must have literal bounds and span fewer than {MaxRangeItems} numbers";
            }
            return base.VisitRangeExpression(rangeExpression);
        }
    }

    /// <summary>
    /// Every filter, built-in or ours, takes strings of at most <see cref="MaxIntermediateChars"/> and refuses to
    /// return a string or list over the intermediate limits. The filters whose result can be many times their input
    /// (join, replace, append, prepend, concat) are refused before they run when the result could exceed the limit,
    /// so not even one oversized string is built.
    /// </summary>
    private static void BoundFilters(FilterCollection filters)
    {
        foreach (var (name, filter) in filters.ToList())
        {
            filters.AddFilter(name, async (input, arguments, context) =>
            {
                if (LargestPossibleResult(name, input, arguments) > MaxIntermediateChars)
                {
                    throw new TemplateException($"The filter '{name}' would make a string longer than {MaxIntermediateChars} characters.");
                }
                var result = await filter(input, arguments, context).ConfigureAwait(false);
                switch (result)
                {
                    case StringValue when result.ToStringValue().Length > MaxIntermediateChars:
                        throw new TemplateException($"The filter '{name}' made a string longer than {MaxIntermediateChars} characters.");
                    case ArrayValue array when array.Values.Count > MaxIntermediateItems:
                        throw new TemplateException($"The filter '{name}' made a list longer than {MaxIntermediateItems} items.");
                    default:
                        return result;
                }
            });
        }
    }

    /// <summary>An upper bound of a filter's result in characters (its input's size for most), computed without running it.</summary>
    private static long LargestPossibleResult(string name, FluidValue input, FilterArguments arguments)
    {
        static long Chars(FluidValue value) => value is StringValue ? value.ToStringValue().Length : 0;
        long largest = Chars(input);
        for (var i = 0; i < arguments.Count; i++)
        {
            largest = Math.Max(largest, Chars(arguments.At(i)));
        }
        if (largest > MaxIntermediateChars)
        {
            return largest;
        }
        var first = arguments.At(0);
        switch (name)
        {
            case "append" or "prepend":
                return Chars(input) + Chars(first);
            case "replace" or "replace_first" or "replace_last":
                var text = Chars(input);
                var find = Chars(first);
                var occurrences = find == 0 ? text + 1 : text / find;
                return text + (occurrences * Chars(arguments.At(1)));
            case "join" when input is ArrayValue array:
                var separator = first.IsNil() ? 1 : first.ToStringValue().Length;
                long total = (long)array.Values.Count * separator;
                foreach (var item in array.Values)
                {
                    total += item is StringValue ? item.ToStringValue().Length : 20;
                }
                return total;
            case "concat" when input is ArrayValue left && first is ArrayValue right:
                return (long)(left.Values.Count + right.Values.Count) * MaxIntermediateChars / MaxIntermediateItems;
            default:
                return largest;
        }
    }

    private static TemplateOptions CreateOptions()
    {
        var options = new TemplateOptions
        {
            MaxSteps = 100_000,
            MaxRecursion = 16,
            CultureInfo = CultureInfo.InvariantCulture,
            TimeZone = TimeZoneInfo.Utc,
            Now = static () => DateTimeOffset.UtcNow,
        };
        options.Filters.AddFilter("iso8601", static (input, _, _) =>
            ToDate(input) is { } d ? new StringValue(FormatIso(d)) : NilValue.Instance);
        options.Filters.AddFilter("unix_time", static (input, _, _) =>
            ToDate(input) is { } d ? NumberValue.Create(d.ToUnixTimeSeconds()) : NilValue.Instance);
        options.Filters.AddFilter("add_seconds", static (input, args, _) =>
            ToDate(input) is { } d ? new DateTimeValue(d.AddSeconds((double)args.At(0).ToNumberValue())) : NilValue.Instance);
        options.Filters.AddFilter("url_encode", static (input, _, _) =>
            new StringValue(Uri.EscapeDataString(input.ToStringValue())));
        options.Filters.AddFilter("base64_encode", static (input, _, _) =>
            new StringValue(Convert.ToBase64String(Encoding.UTF8.GetBytes(input.ToStringValue()))));
        options.Filters.AddFilter("json", static (input, _, _) =>
            new StringValue(FromFluid(input).ToString(Formatting.None)));
        BoundFilters(options.Filters);
        return options;
    }

    internal static string FormatIso(DateTimeOffset d) => d.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static DateTimeOffset? ToDate(FluidValue input)
    {
        switch (input)
        {
            case DateTimeValue:
                return input.ToObjectValue() switch
                {
                    DateTimeOffset dto => dto,
                    DateTime dt => new DateTimeOffset(DateTime.SpecifyKind(dt, dt.Kind == DateTimeKind.Unspecified ? DateTimeKind.Utc : dt.Kind)),
                    _ => null,
                };
            case NumberValue:
                return DateTimeOffset.FromUnixTimeSeconds((long)input.ToNumberValue());
            case StringValue:
                var text = input.ToStringValue();
                if (text is "now" or "today")
                {
                    return DateTimeOffset.UtcNow;
                }
                return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : null;
            default:
                return null;
        }
    }

    internal static FluidValue ToFluid(JToken? token) => token?.Type switch
    {
        JTokenType.Object => new DictionaryValue(new JObjectIndexable((JObject)token)),
        JTokenType.Array => new ArrayValue(((JArray)token).Select(ToFluid).ToArray()),
        JTokenType.String => new StringValue((string)token!),
        JTokenType.Integer or JTokenType.Float => ((JValue)token).Value switch
        {
            long l => NumberValue.Create(l),
            int i => NumberValue.Create(i),
            decimal m => NumberValue.Create(m),
            double d when d is > (double)decimal.MinValue and < (double)decimal.MaxValue => NumberValue.Create((decimal)d),
            var other => new StringValue(Convert.ToString(other, CultureInfo.InvariantCulture) ?? ""),
        },
        JTokenType.Boolean => BooleanValue.Create((bool)token),
        JTokenType.Date => new DateTimeValue((DateTime)token),
        null or JTokenType.Null or JTokenType.Undefined => NilValue.Instance,
        _ => new StringValue(token.ToString()),
    };

    internal static JToken FromFluid(FluidValue value)
    {
        switch (value)
        {
            case ArrayValue array:
                return new JArray(array.Values.Select(FromFluid));
            case DictionaryValue dictionary:
                if (dictionary.ToObjectValue() is JObjectIndexable indexable)
                {
                    return indexable.Object.DeepClone();
                }
                var obj = new JObject();
                if (dictionary.ToObjectValue() is IFluidIndexable other)
                {
                    foreach (var key in other.Keys)
                    {
                        obj[key] = other.TryGetValue(key, out var v) ? FromFluid(v) : JValue.CreateNull();
                    }
                }
                return obj;
            case NumberValue:
                var number = value.ToNumberValue();
                return number == decimal.Truncate(number) && number is >= long.MinValue and <= long.MaxValue ? new JValue((long)number) : new JValue(number);
            case BooleanValue:
                return new JValue(value.ToBooleanValue());
            case DateTimeValue:
                return ToDate(value) is { } d ? new JValue(FormatIso(d)) : JValue.CreateNull();
            case StringValue:
                return new JValue(value.ToStringValue());
            default:
                return value.IsNil() ? JValue.CreateNull() : new JValue(value.ToStringValue());
        }
    }

    private sealed class JObjectIndexable(JObject obj) : IFluidIndexable
    {
        public JObject Object => obj;
        public int Count => obj.Count;
        public IEnumerable<string> Keys => obj.Properties().Select(p => p.Name);

        public bool TryGetValue(string name, out FluidValue value)
        {
            if (obj.TryGetValue(name, StringComparison.Ordinal, out var token))
            {
                value = ToFluid(token);
                return true;
            }
            value = NilValue.Instance;
            return false;
        }
    }

    private sealed class BoundedWriter(int max) : StringWriter(CultureInfo.InvariantCulture)
    {
        private void Check(int adding)
        {
            if (GetStringBuilder().Length + adding > max)
            {
                throw new TemplateException($"Template output exceeds {max} characters.");
            }
        }

        public override void Write(char value)
        {
            Check(1);
            base.Write(value);
        }

        public override void Write(string? value)
        {
            Check(value?.Length ?? 0);
            base.Write(value);
        }

        public override void Write(char[] buffer, int index, int count)
        {
            Check(count);
            base.Write(buffer, index, count);
        }

        public override void Write(ReadOnlySpan<char> buffer)
        {
            Check(buffer.Length);
            base.Write(buffer);
        }
    }
}
