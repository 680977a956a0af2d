using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Plugboard.Http;

/// <summary>
/// Makes the generated OpenAPI document a complete contract for generated clients: a bearer security scheme (the
/// reference page can authorize requests), every path parameter declared (route-group parameters such as
/// {workspaceId} that a handler does not bind itself included), an operationId and a summary per operation, the
/// problem responses every operation can return, and a server URL without a trailing slash.
/// </summary>
public static partial class OpenApiContract
{
    public const string SecuritySchemeName = "bearer";

    public static void Configure(OpenApiOptions options)
    {
        options.AddOperationTransformer((operation, context, _) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            if (metadata.OfType<IAllowAnonymous>().Any())
            {
                operation.Security = []; // anonymous: overrides the document's requirement
            }
            var method = context.Description.HttpMethod ?? "GET";
            var route = "/" + (context.Description.RelativePath ?? "").TrimStart('/');
            operation.OperationId ??= OperationId(method, route);
            var handler = metadata.OfType<System.Reflection.MethodInfo>().FirstOrDefault();
            operation.Summary ??= handler is not null && !handler.Name.Contains('<', StringComparison.Ordinal)
                ? $"{Humanize(handler.Name)} ({operation.Tags?.FirstOrDefault()?.Name ?? "API"})"
                : $"{method} {route}";
            operation.Parameters ??= [];
            foreach (Match parameter in RouteParameter().Matches(route))
            {
                var name = parameter.Groups[1].Value;
                if (!operation.Parameters.Any(p => p.In == ParameterLocation.Path && p.Name == name))
                {
                    operation.Parameters.Add(new OpenApiParameter
                    {
                        Name = name,
                        In = ParameterLocation.Path,
                        Required = true,
                        Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                    });
                }
            }
            if (metadata.OfType<StreamedUploadMetadata>().Any())
            {
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Description = "One or more files, each a multipart/form-data part with a filename (any field name).",
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["multipart/form-data"] = new()
                        {
                            Schema = new OpenApiSchema
                            {
                                Type = JsonSchemaType.Object,
                                Properties = new Dictionary<string, IOpenApiSchema>
                                {
                                    ["file"] = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" } },
                                },
                            },
                        },
                    },
                };
            }
            operation.Responses ??= [];
            // Every other status is an RFC 9457 problem ("default", which generated clients map to their error type).
            operation.Responses["default"] = new OpenApiResponse
            {
                Description = "A problem (RFC 9457): 4xx the client can act on, 5xx the server could not answer (503 carries Retry-After).",
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/problem+json"] = new() { Schema = new OpenApiSchemaReference("Problem", context.Document) },
                },
            };
            return Task.CompletedTask;
        });
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Plugboard API";
            document.Info.Description = "Multi-tenant connectors platform. Authenticate with `Authorization: Bearer pb_…`. Errors are RFC 9457 problem details.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[SecuritySchemeName] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "pb_… API key, or an OIDC JWT when sign-in is configured",
                Description = "Send `Authorization: Bearer <key>`.",
            };
            document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SecuritySchemeName, document)] = [] }];
            document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
            document.Components.Schemas["Problem"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                Description = "RFC 9457 problem details; `type` is urn:plugboard:problem:<slug>.",
                Properties = new Dictionary<string, IOpenApiSchema>
                {
                    ["type"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["title"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer },
                    ["detail"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["instance"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["trace_id"] = new OpenApiSchema { Type = JsonSchemaType.String },
                    ["pointer"] = new OpenApiSchema { Type = JsonSchemaType.String },
                },
            };
            foreach (var server in document.Servers ?? [])
            {
                server.Url = server.Url?.TrimEnd('/');
            }
            return Task.CompletedTask;
        });
    }

    private static string OperationId(string method, string route)
    {
        var words = route.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(w => w != "v1")
            .Select(w => w.StartsWith('{') ? "By" + Pascal(w.Trim('{', '}').Split(':')[0]) : Pascal(w));
        return method.ToLowerInvariant() + string.Concat(words);
    }

    private static string Pascal(string word) =>
        string.Concat(word.Split(['-', '_', '.'], StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    private static string Humanize(string name) => WordBoundary().Replace(name, " $1").Trim();

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")]
    private static partial Regex RouteParameter();

    [GeneratedRegex(@"(?<!^)([A-Z])")]
    private static partial Regex WordBoundary();
}
