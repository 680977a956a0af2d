namespace Plugboard.Engine.Manifests;

/// <summary>The JSON Schema (draft 2020-12) of manifests and template files, for editors and the API.</summary>
public static class ManifestSchema
{
    private static readonly Lazy<string> Text = new(() =>
    {
        using var stream = typeof(ManifestSchema).Assembly.GetManifestResourceStream("Plugboard.Engine.Manifests.manifest.schema.json")
                           ?? throw new InvalidOperationException("manifest.schema.json is not embedded.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    public static string Json => Text.Value;
}
