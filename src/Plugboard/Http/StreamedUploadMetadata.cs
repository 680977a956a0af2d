namespace Plugboard.Http;

/// <summary>
/// Marks an endpoint whose body is multipart/form-data streamed file by file: the JSON-only rule and the 1 MiB body
/// limit do not apply to it (the handler bounds each file and the number of files), and the OpenAPI document
/// describes its body as files.
/// </summary>
public sealed class StreamedUploadMetadata;
