namespace Plugboard.Testing;

/// <summary>Hostile documents shared by the engine and platform tests (linked into each).</summary>
public static class HostileInput
{
    /// <summary>Nine levels of ten-fold aliases ("billion laughs"): 10^9 nodes if expanded, about 500 bytes of text.
    /// The first anchor is on line 3, at <c>/a0</c>.</summary>
    public static string AliasBomb()
    {
        var text = new System.Text.StringBuilder("version: 1\nbase_url: https://api.example.com\na0: &a0 [\"lol\"]\n");
        for (var level = 1; level <= 9; level++)
        {
            text.Append($"a{level}: &a{level} [").Append(string.Join(",", Enumerable.Repeat($"*a{level - 1}", 10))).Append("]\n");
        }
        return text.Append("steps: []\n").ToString();
    }
}
