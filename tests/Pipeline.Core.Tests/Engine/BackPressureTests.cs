namespace Pipeline.Tests.Engine;

public sealed class BackPressureTests
{
    [Fact]
    public async Task A_slow_tool_stops_the_pulls_at_the_configured_bound()
    {
        // The bound, by hand: MaxInFlight = 20 slots, each taken before NextAsync and given back
        // after the item's events reach Emit. With every tool held, 3 run and 17 wait at
        // Dispatch, and no NextAsync can start: 20 held (pulls in progress + unsettled handles).
        const int expectedBound = 20;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = 0;
        var gated = new ScriptedTool("gated", async (_, ct) =>
        {
            Interlocked.Increment(ref running);
            await release.Task.WaitAsync(ct);
            return ToolResult.Success();
        });
        var source = new RecordingSource(handle => ClaimOutcome.Claimed(TestCommands.Make($"c{handle}", "gated")));
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            PullParallelism = 2,
            MaxInFlight = 20,
            Claim = new BlockOptions { Parallelism = 1 },
            AckDecision = new BlockOptions { Parallelism = 2 },
            Dispatch = new BlockOptions { Parallelism = 3 },
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(gated), new CollectingSink(), options);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        long Held() => source.Pulled - source.Settled.Count;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (Held() < expectedBound && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        // Saturated: give an unbounded pipeline the chance to pull more, then check it did not.
        await Task.Delay(200);
        Assert.Equal(expectedBound, Held());
        Assert.Equal(3, Volatile.Read(ref running));
        Assert.True(source.MaxHeld <= expectedBound, $"held {source.MaxHeld} at once, bound {expectedBound}");
        Assert.Equal(new BlockLoad(Queued: 17, Running: 3), pipeline.Stats.Blocks.Dispatch);

        stop.Cancel();
        release.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(source.Pulled, source.Settled.Count);
        Assert.Equal(0, source.DuplicateSettles);
    }
}
