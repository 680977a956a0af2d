using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Plugboard.Tests.Infrastructure;

/// <summary>Multipart uploads as a real client sends them, and waiting for the pipeline to settle a document or a batch.</summary>
public static class Uploads
{
    public static MultipartFormDataContent Form(params (string Name, byte[] Bytes, string? Type)[] files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (name, bytes, type) in files)
        {
            var part = new ByteArrayContent(bytes);
            if (type is not null)
            {
                part.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            }
            part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "file", FileNameStar = name };
            form.Add(part);
        }
        return form;
    }

    public static Task<HttpResponseMessage> UploadAsync(this HttpClient http, string workspaceId, string name, byte[] bytes, string? type = null, Guid? batchId = null) =>
        http.PostAsync(batchId is null ? $"/v1/workspaces/{workspaceId}/documents" : $"/v1/workspaces/{workspaceId}/uploads/batches/{batchId}/files",
            Form((name, bytes, type)));

    public static Task<HttpResponseMessage> UploadAsync(this HttpClient http, string workspaceId, string name, string text, string? type = null, Guid? batchId = null) =>
        http.UploadAsync(workspaceId, name, Encoding.UTF8.GetBytes(text), type, batchId);

    /// <summary>Uploads one file that must be accepted; returns its document id.</summary>
    public static async Task<Guid> AcceptedAsync(this HttpClient http, string workspaceId, string name, string text)
    {
        var response = await http.UploadAsync(workspaceId, name, text);
        var body = await response.AssertStatusAsync(201);
        var file = body.GetProperty("files")[0];
        Assert.Equal("accepted", file.GetProperty("outcome").GetString());
        return file.GetProperty("document_id").GetGuid();
    }

    /// <summary>Polls the document until it leaves pending/processing; returns it.</summary>
    public static async Task<JsonElement> SettledAsync(this HttpClient http, string workspaceId, Guid documentId)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); ; await Task.Delay(50))
        {
            var document = await (await http.GetAsync($"/v1/workspaces/{workspaceId}/documents/{documentId}")).AssertStatusAsync(200);
            if (document.GetProperty("processing_status").GetString() is "completed" or "failed")
            {
                return document;
            }
            Assert.True(DateTime.UtcNow < deadline, $"document {documentId} did not settle: {document}");
        }
    }

    public static async Task<JsonElement> BatchSettledAsync(this HttpClient http, string workspaceId, Guid batchId)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); ; await Task.Delay(50))
        {
            var batch = await (await http.GetAsync($"/v1/workspaces/{workspaceId}/uploads/batches/{batchId}")).AssertStatusAsync(200);
            if (batch.GetProperty("status").GetString() is "completed" or "completed_with_errors" or "failed")
            {
                return batch;
            }
            Assert.True(DateTime.UtcNow < deadline, $"batch {batchId} did not complete: {batch}");
        }
    }
}
