namespace Pipeline.Tests.Support;

internal static class PipelineHarness
{
    /// <summary>Options with no real waiting: zero backoffs, short deadlines.</summary>
    public static PipelineOptions FastOptions(AckMode mode = AckMode.AckBeforeDispatch) => new()
    {
        AckMode = mode,
        PullErrorBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.Zero },
        NackBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.Zero },
        ToolRetryDelay = TimeSpan.Zero,
        SettleTimeout = TimeSpan.FromMilliseconds(500),
        WorkerId = "test-worker",
    };

    public static ToolRegistry Tools(params ITool[] extra) => new([new NoopTool(), new EchoTool(), .. extra]);
}
