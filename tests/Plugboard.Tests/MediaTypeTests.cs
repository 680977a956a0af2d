using Microsoft.Extensions.Configuration;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Plugboard.Storage;

namespace Plugboard.Tests;

/// <summary>A file's type comes from its bytes and structure; its name and declared type only refine or contradict it.</summary>
public sealed class MediaTypeTests
{
    private static string Sniff(byte[] bytes, string? name = null) => MediaTypes.Sniff(new MemoryStream(bytes), name);

    private static byte[] Text(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Zip(params (string Name, string Content)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var writer = new StreamWriter(zip.CreateEntry(name).Open());
                writer.Write(content);
            }
        }
        return buffer.ToArray();
    }

    private static byte[] Docx() => Zip(
        ("[Content_Types].xml", """<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"""),
        ("word/document.xml", "<w:document/>"));

    [Fact]
    public void Types_come_from_content_whatever_the_file_is_called()
    {
        Assert.Equal(MediaTypes.Pdf, Sniff(Text("%PDF-1.7\n%…"), "notes.txt"));
        Assert.Equal(MediaTypes.Docx, Sniff(Docx(), "report.bin"));
        Assert.Equal(MediaTypes.Zip, Sniff(Zip(("a.txt", "a")), "report.docx"));
        Assert.Equal(MediaTypes.Zip, Sniff(Zip(("[Content_Types].xml", "spreadsheetml"), ("xl/workbook.xml", "<x/>")), "sheet.docx"));
        Assert.Equal(MediaTypes.Executable, Sniff(File.ReadAllBytes("/bin/true"), "invoice.pdf"));
        Assert.Equal(MediaTypes.Executable, Sniff([(byte)'M', (byte)'Z', 0x90, 0x00], "photo.docx"));
        Assert.Equal(MediaTypes.Executable, Sniff(Text("#!/bin/sh\nrm -rf /\n"), "readme.md"));
        // Mach-O: 32 and 64 bit in both byte orders, and fat (universal) binaries.
        foreach (byte[] magic in new[] { new byte[] { 0xFE, 0xED, 0xFA, 0xCE }, [0xFE, 0xED, 0xFA, 0xCF], [0xCE, 0xFA, 0xED, 0xFE], [0xCF, 0xFA, 0xED, 0xFE], [0xCA, 0xFE, 0xBA, 0xBE] })
        {
            Assert.Equal(MediaTypes.Executable, Sniff([.. magic, 0x07, 0x00, 0x00, 0x01, .. new byte[64]], "notes.txt"));
        }
        Assert.Equal(MediaTypes.Json, Sniff(Text("  {\"a\": [1, 2]}"), "data.txt"));
        Assert.Equal(MediaTypes.PlainText, Sniff(Text("{ not json"), "data.json"));
        // JSON larger than any buffer is checked whole, in bounded memory: valid, cut short, or followed by more text.
        var large = "[" + string.Join(",", Enumerable.Range(0, 200_000).Select(i => $"{{\"id\": {i}, \"text\": \"{new string('x', i % 50)}\"}}")) + "]";
        Assert.Equal(MediaTypes.Json, Sniff(Text(large), "big.json"));
        Assert.Equal(MediaTypes.PlainText, Sniff(Text(large[..^1]), "cut.json"));
        Assert.Equal(MediaTypes.PlainText, Sniff(Text(large + " trailing"), "more.json"));
        Assert.Equal(MediaTypes.Json, Sniff(Text("{\"long\": \"" + new string('y', 300_000) + "\"}"), "long.json"));
        Assert.Equal(MediaTypes.Html, Sniff(Text("<!-- hi -->\n<!DOCTYPE html><html><body>x</body></html>"), "page.txt"));
        Assert.Equal(MediaTypes.WebVtt, Sniff(Text("\uFEFFWEBVTT\n\n00:00.000 --> 00:01.000\nHello"), "call.txt"));
        Assert.Equal(MediaTypes.SubRip, Sniff(Text("1\r\n00:00:01,000 --> 00:00:02,500\r\nHello\r\n"), "call.txt"));
        Assert.Equal(MediaTypes.Markdown, Sniff(Text("# Title\n\nBody"), "notes.md"));
        Assert.Equal(MediaTypes.Csv, Sniff(Text("a,b\n1,2\n"), "table.CSV"));
        Assert.Equal(MediaTypes.PlainText, Sniff(Text("# Title"), "notes.txt"));
        Assert.Equal(MediaTypes.Binary, Sniff(RandomNumberGenerator.GetBytes(4096)));
        Assert.Equal(MediaTypes.Binary, Sniff(Text("text with a \0 NUL")));
        // A multi-byte character cut by the end of the 64 KiB sample is still text.
        Assert.Equal(MediaTypes.PlainText, Sniff(Text("a" + new string('é', 40_000)), "long.txt"));
    }

    [Fact]
    public void Sniffing_leaves_the_stream_at_its_start()
    {
        var stream = new MemoryStream(Docx());
        MediaTypes.Sniff(stream, null);
        Assert.Equal(0, stream.Position);
    }

    [Fact]
    public void Refusals_say_what_the_content_is_and_what_was_declared()
    {
        var allowed = MediaTypes.DefaultAllowed;
        Assert.Null(MediaTypes.Refusal(MediaTypes.Pdf, "application/pdf", allowed));
        Assert.Null(MediaTypes.Refusal(MediaTypes.Pdf, null, allowed));
        Assert.Null(MediaTypes.Refusal(MediaTypes.Pdf, "application/octet-stream", allowed));
        Assert.Null(MediaTypes.Refusal(MediaTypes.Markdown, "text/plain; charset=utf-8", allowed));
        Assert.Equal("The file was declared as application/pdf, but its content is text/html.", MediaTypes.Refusal(MediaTypes.Html, "application/pdf", allowed));
        // What browsers commonly declare for text is not a contradiction.
        Assert.Null(MediaTypes.Refusal(MediaTypes.WebVtt, "text/plain", allowed));
        Assert.Null(MediaTypes.Refusal(MediaTypes.Json, "text/plain; charset=utf-8", allowed));
        Assert.Null(MediaTypes.Refusal(MediaTypes.Csv, "application/vnd.ms-excel", allowed));
        Assert.NotNull(MediaTypes.Refusal(MediaTypes.Pdf, "text/plain", allowed));
        Assert.Contains("executables are never accepted", MediaTypes.Refusal(MediaTypes.Executable, "application/pdf", allowed));
        Assert.Contains("application/zip, which this bucket does not accept", MediaTypes.Refusal(MediaTypes.Zip, null, allowed));
        Assert.Contains("does not accept", MediaTypes.Refusal(MediaTypes.Html, null, [MediaTypes.Pdf]));
    }

    private static Microsoft.Extensions.Configuration.IConfiguration Settings(params (string Name, string Value)[] values) =>
        new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(values.ToDictionary(v => v.Name, v => (string?)v.Value)).Build();

    [Fact]
    public void The_bucket_is_configured_by_environment_with_checked_values()
    {
        var local = BucketSettings.FromConfiguration(Settings(), "/srv/plugboard");
        Assert.Equal(Path.Combine("/srv/plugboard", "objects"), local.FileSystemRoot);
        Assert.Null(local.S3);
        Assert.Equal(100L * 1024 * 1024, local.MaxFileBytes);
        Assert.Equal(MediaTypes.DefaultAllowed, local.AllowedTypes);

        var s3 = BucketSettings.FromConfiguration(Settings(("PLUGBOARD_S3_ENDPOINT", "http://127.0.0.1:9000"), ("PLUGBOARD_S3_ACCESS_KEY_ID", "id"),
            ("PLUGBOARD_S3_SECRET_ACCESS_KEY", "the-secret"), ("PLUGBOARD_UPLOAD_MAX_MB", "0.5"), ("PLUGBOARD_UPLOAD_ALLOWED_TYPES", "text/plain, Text/Markdown")), "/srv");
        Assert.Equal(("connector-imports", "us-east-1", true), (s3.S3!.Bucket, s3.S3.Region, s3.S3.ForcePathStyle));
        Assert.DoesNotContain("the-secret", s3.S3.ToString(), StringComparison.Ordinal);
        Assert.Equal(512 * 1024, s3.MaxFileBytes);
        Assert.Equal([MediaTypes.PlainText, MediaTypes.Markdown], s3.AllowedTypes);
        Assert.NotNull(MediaTypes.Refusal(MediaTypes.Pdf, null, s3.AllowedTypes));

        var missing = Assert.Throws<Plugboard.Hosting.InvalidSettingException>(() =>
            BucketSettings.FromConfiguration(Settings(("PLUGBOARD_S3_ENDPOINT", "https://s3.example.test")), "/srv"));
        Assert.Contains("PLUGBOARD_S3_ACCESS_KEY_ID must be set", missing.Message, StringComparison.Ordinal);
    }
}
