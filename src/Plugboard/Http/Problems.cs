using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Npgsql;
using Plugboard.Security;

namespace Plugboard.Http;

/// <summary>An error the caller can act on, answered as an RFC 9457 problem with a stable type.</summary>
public sealed class ProblemException(int status, string slug, string title, string? detail = null, IDictionary<string, object?>? extensions = null)
    : Exception(detail ?? title)
{
    public int Status { get; } = status;
    public string Slug { get; } = slug;
    public string Title { get; } = title;
    public string? Detail { get; } = detail;
    public IDictionary<string, object?>? Extensions { get; } = extensions;

    /// <summary>Response headers that belong to the problem (e.g. Retry-After on a 429).</summary>
    public Dictionary<string, string> Headers { get; } = [];
}

public static class Problems
{
    public const string TypePrefix = "urn:plugboard:problem:";

    public static ProblemException NotFound(string what) =>
        new(404, "not-found", "Not found", $"{what} was not found, or you do not have access to it.");

    public static ProblemException Forbidden(string detail) => new(403, "forbidden", "Forbidden", detail);

    public static ProblemException Conflict(string detail) => new(409, "conflict", "Conflict", detail);

    public static ProblemException BadRequest(string detail, string? pointer = null) =>
        new(400, "bad-request", "Bad request", detail, pointer is null ? null : new Dictionary<string, object?> { ["pointer"] = pointer });

    public static ProblemException Invalid(string detail, string? pointer = null) =>
        new(422, "validation-failed", "Validation failed", detail, pointer is null ? null : new Dictionary<string, object?> { ["pointer"] = pointer });

    public static ProblemException PreconditionFailed(string detail) => new(412, "precondition-failed", "Precondition failed", detail);

    /// <summary>Slugs for framework-produced statuses (routing 404/405, Kestrel 413, …).</summary>
    public static string SlugFor(int status) => status switch
    {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        406 => "not-acceptable",
        408 => "request-timeout",
        409 => "conflict",
        411 => "length-required",
        412 => "precondition-failed",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "validation-failed",
        428 => "precondition-required",
        429 => "too-many-requests",
        503 => "unavailable",
        _ => status >= 500 ? "internal" : "error",
    };

    public static void Customize(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var status = problem.Status ?? context.HttpContext.Response.StatusCode;
        if (problem.Type is null || !problem.Type.StartsWith(TypePrefix, StringComparison.Ordinal))
        {
            problem.Type = TypePrefix + SlugFor(status);
        }
        problem.Instance ??= context.HttpContext.Request.Path;
        problem.Extensions["trace_id"] = Activity.Current?.TraceId.ToString() ?? context.HttpContext.TraceIdentifier;
    }
}

/// <summary>Turns every exception into a problem body; unexpected ones become a 500 without internals.</summary>
public sealed class ProblemExceptionHandler(IProblemDetailsService problemDetails, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && httpContext.RequestAborted.IsCancellationRequested)
        {
            httpContext.Response.StatusCode = 499;
            return true;
        }
        var (status, slug, title, detail, extensions) = Map(exception);
        if (status == 503)
        {
            // The database restarted or is away: every idle pooled connection is as dead as the one that failed, so
            // drop them now (one failure per pool, not one per connection), and tell the client when to come back.
            var db = httpContext.RequestServices.GetRequiredService<Data.Db>();
            if (exception.InnerException is not TimeoutException) // an exhausted pool is busy, not broken: keep it
            {
                db.Api.Clear();
                db.Service.Clear();
            }
            httpContext.Response.Headers.RetryAfter = "5";
            logger.LogWarning("Database unavailable on {Method} {Path}: {ExceptionType} {SqlState}", httpContext.Request.Method, httpContext.Request.Path,
                exception.GetType().Name, (exception as PostgresException)?.SqlState);
        }
        else if (status >= 500)
        {
            logger.LogError(exception, "Unhandled {ExceptionType} on {Method} {Path}", exception.GetType().Name, httpContext.Request.Method, httpContext.Request.Path);
        }
        httpContext.Response.StatusCode = status;
        if (exception is ProblemException { Headers.Count: > 0 } withHeaders)
        {
            foreach (var (name, value) in withHeaders.Headers)
            {
                httpContext.Response.Headers[name] = value;
            }
        }
        var problem = new ProblemDetails { Status = status, Type = Problems.TypePrefix + slug, Title = title, Detail = detail };
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions)
            {
                problem.Extensions[key] = value;
            }
        }
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem });
    }

    private static (int, string, string, string?, IDictionary<string, object?>?) Map(Exception exception) => exception switch
    {
        ProblemException p => (p.Status, p.Slug, p.Title, p.Detail, p.Extensions),
        BadHttpRequestException b => (b.StatusCode, Problems.SlugFor(b.StatusCode), "Bad request", DescribeBadRequest(b), null),
        JsonException j => (400, "bad-request", "Bad request", DescribeJson(j), null),
        NpgsqlException npgsql when IsUnavailable(npgsql) => (503, "unavailable", "Service unavailable",
            "The database is unreachable or restarting. Retry after the number of seconds in Retry-After.", null),
        PostgresException pg => MapPostgres(pg),
        SecretDecryptionException => (500, "secret-unreadable", "A stored secret could not be decrypted",
            "The server's key ring cannot read a stored secret. An operator must restore the missing key.", null),
        _ => (500, "internal", "Internal error", "An unexpected error occurred. It has been logged; quote the trace_id when reporting it.", null),
    };

    /// <summary>The database cannot serve right now (down, restarting, refusing connections, pool exhausted), as opposed
    /// to refusing this request.</summary>
    public static bool IsUnavailable(NpgsqlException exception) => exception switch
    {
        PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exceptions
                                || pg.SqlState.StartsWith("57P", StringComparison.Ordinal) // admin/crash shutdown, cannot connect now
                                || pg.SqlState is PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.InsufficientResources,
        NpgsqlOperationInProgressException => false, // a bug (a connection used twice), not an outage
        _ => true, // could not connect, connection broken, pool exhausted
    };

    private static (int, string, string, string?, IDictionary<string, object?>?) MapPostgres(PostgresException pg) => pg.SqlState switch
    {
        PostgresErrorCodes.UniqueViolation => (409, "conflict", "Conflict", "A resource with the same unique name or key already exists.", null),
        PostgresErrorCodes.ForeignKeyViolation => (422, "reference-not-found", "Reference not found", "A referenced resource does not exist in this workspace.", null),
        PostgresErrorCodes.CheckViolation => (422, "validation-failed", "Validation failed", $"A value is out of range ({pg.ConstraintName}).", null),
        PostgresErrorCodes.NotNullViolation => (422, "validation-failed", "Validation failed", $"'{pg.ColumnName}' is required.", null),
        PostgresErrorCodes.InsufficientPrivilege => (403, "forbidden", "Forbidden", "Your role does not allow this change.", null),
        PostgresErrorCodes.StringDataRightTruncation or PostgresErrorCodes.InvalidTextRepresentation or PostgresErrorCodes.NumericValueOutOfRange
            or PostgresErrorCodes.InvalidDatetimeFormat or PostgresErrorCodes.DatetimeFieldOverflow or PostgresErrorCodes.UntranslatableCharacter
            or PostgresErrorCodes.CharacterNotInRepertoire
            => (400, "invalid-value", "Invalid value", "A value in the request has the wrong format.", null),
        PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
            => (409, "concurrent-update", "Concurrent update", "Another request changed the same data; retry the request.", null),
        _ => (500, "internal", "Internal error", "An unexpected database error occurred. It has been logged; quote the trace_id when reporting it.", null),
    };

    private static string DescribeBadRequest(BadHttpRequestException exception) =>
        exception.InnerException is JsonException json ? DescribeJson(json)
        : exception.StatusCode == 413 ? "The request body is too large."
        : exception.StatusCode == 415 ? "Send the body as application/json."
        : exception.Message.Contains("was not provided from body", StringComparison.Ordinal) || exception.Message.Contains("body was empty", StringComparison.Ordinal)
            ? "A JSON request body is required."
        : exception.Message.Contains("Failed to bind parameter", StringComparison.Ordinal) ? "A query or route parameter has the wrong format."
        : "The request is malformed.";

    private static string DescribeJson(JsonException exception)
    {
        var path = string.IsNullOrEmpty(exception.Path) ? "$" : exception.Path;
        var message = exception.Message;
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            return $"Unknown field at {path}.";
        }
        if (message.Contains("missing required properties", StringComparison.Ordinal) || message.Contains("was missing required", StringComparison.Ordinal))
        {
            var start = message.IndexOf("including:", StringComparison.Ordinal);
            return start >= 0 ? $"Missing required field(s): {message[(start + 10)..].Trim().TrimEnd('.')}." : "A required field is missing.";
        }
        if (message.Contains("null", StringComparison.OrdinalIgnoreCase) && message.Contains("non-nullable", StringComparison.OrdinalIgnoreCase))
        {
            return $"The field at {path} must not be null.";
        }
        return exception.Path is null ? "The request body is not valid JSON." : $"The value at {path} has the wrong type or format.";
    }
}
