namespace Pipeline.Tests.Engine;

/// <summary>
/// PipelineRuntime.EventsOnTheirWay: a held duplicate (DeliveryPosition.Held) carries no events
/// and is not counted as events on their way to the sink.
/// </summary>
public sealed class HeldDuplicateDeadlineTests
{
    /// <summary>
    /// Ack after dispatch; c1's tool ignores its token; its duplicate is held behind it. At the
    /// hard deadline both are nacked, and the run should return a moment later ("a drain still held
    /// by a callee that ignores its token is given a moment, not the whole budget"). But the held
    /// duplicate, which carries no events, stays Held for as long as the hung original keeps its
    /// slot, and counts as events on their way, so QuietAsync waits out the whole settle budget.
    /// </summary>
    [Fact]
    public async Task A_duplicate_held_behind_a_tool_that_ignores_its_token_does_not_hold_RunAsync_for_the_whole_settle_budget()
    {
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        var tool = new ScriptedTool("hung", async (_, _) =>
        {
            Interlocked.Increment(ref started);
            await hang.Task.ConfigureAwait(false); // ignores its token
            return ToolResult.Success();
        });
        var command = TestCommands.Make("c1", "hung");
        var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { SettleTimeout = TimeSpan.FromSeconds(20) };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);
        try
        {
            var run = pipeline.RunAsync(CancellationToken.None);
            await Eventually.WaitFor(() => Volatile.Read(ref started) == 1 && source.Pulled == 2 && pipeline.Stats.Blocks.Claim.Queued == 1, TimeSpan.FromSeconds(20), "the duplicate held behind its hung original");

            var clock = Stopwatch.StartNew();
            pipeline.StopNow();
            await Eventually.Returns(run, TimeSpan.FromSeconds(40), "the run stopped now");
            clock.Stop();

            Assert.Equal(2, pipeline.Stats.DeadlineSettles);
            Assert.Equal(0, pipeline.Stats.InFlight);
            // Grace: 100 ms, and up to 1 s for running tools to report; the budget is 20 s.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"RunAsync took {clock.Elapsed.TotalSeconds:0.0} s after StopNow: the held duplicate kept it for the settle budget"); // fails: ~20 s
        }
        finally
        {
            hang.TrySetResult();
        }
    }
}
