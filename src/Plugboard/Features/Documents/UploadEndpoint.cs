using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using Plugboard.Data;
using Plugboard.Http;

namespace Plugboard.Features.Documents;

/// <summary>Reads a multipart upload section by section, handing each file part to <see cref="DocumentUploads"/> as it arrives.</summary>
public static class UploadEndpoint
{
    public const int MaxFilesPerRequest = 100;
    public const int MaxFieldsPerRequest = 100;
    private const int MaxFieldBytes = 64 * 1024;

    public static async Task<IResult> ReceiveAsync(HttpContext http, RequestDb db, DocumentUploads uploads, Guid? batchId, CancellationToken ct)
    {
        db.RequireRole("member", "upload documents");
        if (batchId is not null)
        {
            var batch = await db.QuerySingleOrDefaultAsync<(string Status, bool HasRoom)>(
                "SELECT status, is_open OR received_files < total_files FROM file_upload_batches WHERE id = @batchId", new { batchId }, ct);
            if (batch.Status is null)
            {
                throw Problems.NotFound("The batch");
            }
            if (batch.Status is not ("pending" or "processing"))
            {
                throw Problems.Conflict($"The batch is {batch.Status}; create a new batch for more files.");
            }
            if (!batch.HasRoom)
            {
                throw Problems.Conflict("The batch holds the number of files it was created for; create a new batch for more files.");
            }
        }
        if (!MediaTypeHeaderValue.TryParse(http.Request.ContentType, out var type) || !type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(type.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
        {
            throw new ProblemException(415, "unsupported-media-type", "Unsupported media type",
                "Send files as multipart/form-data, one part per file with a filename (curl -F file=@report.pdf).");
        }
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = null; // bounded below: each file by the bucket's limit, the request by its file count
        }
        var context = db.Context;
        await db.CommitAsync(ct);
        await db.ReleaseAsync(); // each file is recorded in its own short transaction: no connection waits on a slow upload

        var reader = new MultipartReader(boundary, http.Request.Body, bufferSize: 64 * 1024) { HeadersLengthLimit = 16 * 1024, HeadersCountLimit = 16, BodyLengthLimit = null };
        var files = new List<UploadedFile>();
        var fields = 0;
        var abandoned = false;
        try
        {
            while (await reader.ReadNextSectionAsync(ct) is { } section)
            {
                var name = FileNameOf(section);
                if (name is null)
                {
                    if (++fields > MaxFieldsPerRequest)
                    {
                        throw Problems.BadRequest($"A request takes at most {MaxFieldsPerRequest} form fields without a filename.");
                    }
                    await DrainAsync(section.Body, MaxFieldBytes, ct); // a plain form field: not a file, ignored
                    continue;
                }
                if (files.Count >= MaxFilesPerRequest)
                {
                    // Not read further: the rest of the body is left unread and the connection closed after the answer.
                    files.Add(new UploadedFile(DocumentUploads.CleanFileName(name), UploadedFile.Refused, 0, null, null, null,
                        $"A request takes at most {MaxFilesPerRequest} files; this one and any after it were not read: send them in another request.")
                    { RefusalStatus = 413 });
                    abandoned = true;
                    break;
                }
                var file = await uploads.ReceiveAsync(context, batchId, section.Body, name, section.ContentType, ct);
                files.Add(file);
                if (file.BodyAbandoned)
                {
                    abandoned = true; // the rest of an oversized file is not read, so neither is anything after it
                    break;
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException or IOException)
        {
            throw Problems.BadRequest($"The multipart body is malformed ({e.Message}); {files.Count} file(s) before the error were taken.");
        }
        if (files.Count == 0)
        {
            throw Problems.BadRequest("The request holds no file: send each file as a multipart/form-data part with a filename.");
        }
        if (abandoned)
        {
            http.Response.Headers.Connection = "close"; // an unread body is never drained: the connection ends with the answer
        }
        if (files.All(f => f.Outcome == UploadedFile.Refused))
        {
            var first = files[0];
            var problem = new ProblemException(first.RefusalStatus, Problems.SlugFor(first.RefusalStatus), files.Count == 1 ? "File refused" : "Files refused",
                files.Count == 1 ? first.Reason : $"None of the {files.Count} files was accepted; the first: {first.Reason}",
                new Dictionary<string, object?> { ["files"] = files });
            if (abandoned)
            {
                problem.Headers["Connection"] = "close";
            }
            throw problem;
        }
        return TypedResults.Json(new UploadResult(files), ApiJson.Options, statusCode: files.Any(f => f.Outcome == UploadedFile.Accepted) ? 201 : 200);
    }

    private static string? FileNameOf(MultipartSection section)
    {
        if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.IsFileDisposition())
        {
            return null;
        }
        var name = disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName;
        return HeaderUtilities.RemoveQuotes(name).Value ?? "";
    }

    private static async Task DrainAsync(Stream body, long limit, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        long total = 0;
        int read;
        while ((read = await body.ReadAsync(buffer, ct)) > 0)
        {
            total += read;
            if (total > limit)
            {
                throw Problems.BadRequest($"A form field without a filename is limited to {limit / 1024} KiB; send files with a filename.");
            }
        }
    }
}
