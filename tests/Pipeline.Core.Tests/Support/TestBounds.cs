namespace Pipeline.Tests.Support;

/// <summary>The bounds the engine tests wait within, with <see cref="PipelineHarness.FastOptions"/> (a 500 ms settle budget).</summary>
internal static class TestBounds
{
    /// <summary>A shutdown timeout short enough that a test reaches the hard deadline at once.</summary>
    public static readonly TimeSpan ShortShutdown = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a test waits for the scenario it sets up (a pull, a claim, a renewal).</summary>
    public static readonly TimeSpan ConditionBound = TimeSpan.FromSeconds(3);

    /// <summary>A run that ends by itself (source exhausted) must end within this.</summary>
    public static readonly TimeSpan RunBound = TimeSpan.FromSeconds(5);

    /// <summary>With <see cref="ShortShutdown"/> and a settle budget of 500 ms, RunAsync must be back well within this after a stop.</summary>
    public static readonly TimeSpan StopBound = TimeSpan.FromSeconds(3);

    /// <summary>ShutdownTimeout 200 ms + SettleTimeout 500 ms (FastOptions) + a margin: the tighter bound of the tests whose stop has nothing to wait out.</summary>
    public static readonly TimeSpan QuickStopBound = TimeSpan.FromSeconds(2);
}
