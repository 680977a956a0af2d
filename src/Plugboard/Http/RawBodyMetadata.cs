namespace Plugboard.Http;

/// <summary>
/// Marks an endpoint that reads its raw body itself, within its own limit (inbound webhooks, whose signatures cover the
/// exact bytes): the JSON-only rule and the 1 MiB body limit do not apply to it.
/// </summary>
public sealed class RawBodyMetadata;
