using System.Text.Json;
using Plugboard.Http;

namespace Plugboard.Features.Documents;

/// <summary>A document of the workspace: uploaded, or (later) imported by a connector's sync or webhook.</summary>
public sealed record Document(
    Guid Id, string Source, Guid? ConnectorId, Guid? BatchId, string? ExternalId, string Title, string? FileName, string? ContentType, long? FileSize,
    string? ContentHash, string ProcessingStatus, string? Error, bool ChunksGenerated, int ChunkCount, JsonElement SourceMetadata, string? ExternalUrl,
    bool IsDeleted, DateTime? DeletedAt, DateTime CreatedAt, DateTime UpdatedAt);

/// <summary>What became of one file of an upload: accepted (a new document), duplicate (the workspace already holds these bytes), or refused.</summary>
public sealed record UploadedFile(string FileName, string Outcome, long Size, string? ContentType, string? Sha256, Guid? DocumentId, string? Reason)
{
    public const string Accepted = "accepted";
    public const string Duplicate = "duplicate";
    public const string Refused = "refused";

    /// <summary>The status a refusal answers with when it is the only file (413 too large, 415 wrong type, 422 otherwise).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int RefusalStatus { get; init; } = 422;

    /// <summary>The rest of this file was not read (it was too large), so the request's body cannot be read further.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool BodyAbandoned { get; init; }
}

public sealed record UploadResult(IReadOnlyList<UploadedFile> Files);

public sealed record DocumentChunk(int Ordinal, string Content, IReadOnlyList<string> HeadingPath, int CharStart, int CharEnd, int? PageStart, int? PageEnd,
    long? StartMs, long? EndMs, string? Speaker, int TokenCount);

internal sealed record DocumentRow
{
    public Guid Id { get; init; }
    public string Source { get; init; } = "";
    public Guid? ConnectorId { get; init; }
    public Guid? BatchId { get; init; }
    public string? ExternalId { get; init; }
    public string Title { get; init; } = "";
    public string? FileName { get; init; }
    public string? ContentType { get; init; }
    public string? StoragePath { get; init; }
    public long? FileSize { get; init; }
    public string? ContentHash { get; init; }
    public string ProcessingStatus { get; init; } = "";
    public string? Error { get; init; }
    public bool ChunksGenerated { get; init; }
    public int ChunkCount { get; init; }
    public string SourceMetadata { get; init; } = "{}";
    public string? ExternalUrl { get; init; }
    public bool IsDeleted { get; init; }
    public DateTime? DeletedAt { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

    public const string Columns =
        """
        id, source, connector_id, batch_id, external_id, title, file_name, content_type, storage_path, file_size, content_hash, processing_status, error,
        chunks_generated, chunk_count, source_metadata::text AS source_metadata, external_url, is_deleted, deleted_at, created_at, updated_at
        """;

    public Document ToDocument() => new(Id, Source, ConnectorId, BatchId, ExternalId, Title, FileName, ContentType, FileSize, ContentHash, ProcessingStatus,
        Error, ChunksGenerated, ChunkCount, JsonColumns.Element(SourceMetadata), ExternalUrl, IsDeleted, DeletedAt, CreatedAt, UpdatedAt);
}

internal sealed record ChunkRow
{
    public int Ordinal { get; init; }
    public string Content { get; init; } = "";
    public string[] HeadingPath { get; init; } = [];
    public int CharStart { get; init; }
    public int CharEnd { get; init; }
    public int? PageStart { get; init; }
    public int? PageEnd { get; init; }
    public long? StartMs { get; init; }
    public long? EndMs { get; init; }
    public string? Speaker { get; init; }
    public int TokenCount { get; init; }

    public const string Columns = "ordinal, content, heading_path, char_start, char_end, page_start, page_end, start_ms, end_ms, speaker, token_count";

    public DocumentChunk ToChunk() => new(Ordinal, Content, HeadingPath, CharStart, CharEnd, PageStart, PageEnd, StartMs, EndMs, Speaker, TokenCount);
}
