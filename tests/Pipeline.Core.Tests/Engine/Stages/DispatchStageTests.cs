namespace Pipeline.Tests.Engine.Stages;

/// <summary>The Dispatch stage's in-process retries of a transient tool failure.</summary>
public sealed class DispatchStageTests
{
    /// <summary>
    /// The longest retry delay (a day) doubled over the most retries (10) would ask a timer for
    /// hundreds of days, which it refuses (an exception from the retry, not the tool): each delay
    /// is capped at a day, and the command fails with the tool's own error once the retries are spent.
    /// </summary>
    [Fact]
    public async Task The_longest_retry_delay_over_the_most_retries_ends_in_the_tools_error_not_a_timer_refusing_the_delay()
    {
        var time = new FakeTimeProvider();
        var calls = 0;
        var busy = new ScriptedTool("busy", (_, _) =>
        {
            Interlocked.Increment(ref calls);
            return ValueTask.FromResult(ToolResult.Failure("busy: try later", transient: true));
        });
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { ToolRetryDelay = TimeSpan.FromDays(1), ToolRetries = 10, ToolTimeout = TimeSpan.FromDays(1) };
        Assert.Empty(options.FindErrors());
        var pipeline = new CommandPipeline<DeliveryHandle>(InMemoryCommandSource.From([TestCommands.Make("c1", "busy")]), PipelineHarness.Tools(busy), sink, options, timeProvider: time);

        var run = pipeline.RunAsync(CancellationToken.None);
        var clock = Stopwatch.StartNew();
        while (!run.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            time.Advance(TimeSpan.FromDays(1));
            await Task.Delay(5);
        }

        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(11, Volatile.Read(ref calls));
        var failed = Assert.Single(sink.OfType(EventTypes.CommandFailed));
        Assert.Contains("busy: try later", failed.Error, StringComparison.Ordinal);
    }
}
