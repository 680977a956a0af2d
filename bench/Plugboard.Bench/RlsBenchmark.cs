namespace Plugboard.Bench;

public static class RlsBenchmark
{
    public static Task<int> RunAsync(string[] args) => throw new NotSupportedException("rls benchmark is being written");
}
