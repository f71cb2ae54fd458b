using Xunit.Abstractions;

namespace Pipeline.Testing;

/// <summary>
/// The seed of a randomized test: <c>PIPELINE_TEST_SEED</c> when set (to replay a failure), else the
/// test's own (fixed, or fresh each run); printed to the test's output, and named in its failure messages.
/// </summary>
public static class Seeds
{
    /// <summary>A fresh seed each run, unless <c>PIPELINE_TEST_SEED</c> is set; printed.</summary>
    public static int Next(ITestOutputHelper output) => Print(output, Given() ?? Random.Shared.Next());

    /// <summary><paramref name="fallback"/>, unless <c>PIPELINE_TEST_SEED</c> is set; not printed (a test with rounds prints each).</summary>
    public static int Or(int fallback) => Given() ?? fallback;

    /// <summary><paramref name="fallback"/>, unless <c>PIPELINE_TEST_SEED</c> is set; printed.</summary>
    public static int Or(int fallback, ITestOutputHelper output) => Print(output, Or(fallback));

    private static int? Given() =>
        int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), System.Globalization.CultureInfo.InvariantCulture, out var given) ? given : null;

    private static int Print(ITestOutputHelper output, int seed)
    {
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
        return seed;
    }
}
