namespace Pipeline.Tests.Engine.Stages;

/// <summary>
/// The Claim block at a stop: a duplicate of a command that ran (or runs) here is skipped or held,
/// as without a stop, never handed back to another worker that would run it a second time. A
/// second pipeline on the same source stands in for that worker.
/// </summary>
public sealed class ClaimStageStopTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Ack after dispatch: the duplicate waits (held) behind its running original; the stop comes;
    /// the original succeeds and is acked; the duplicate, claimed again, is handed back rather than
    /// skipped as run, and the next worker runs c1 again.
    /// </summary>
    [Fact]
    public async Task A_duplicate_held_behind_its_original_at_a_stop_is_skipped_not_handed_back_to_run_again()
    {
        var command = TestCommands.Make("c1", "tracked");
        var source = InMemoryCommandSource.From([command, command]);
        var tool = new TrackingTool("tracked");
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ShutdownTimeout = TimeSpan.FromMinutes(5) };
        var first = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);
        using var stop = new CancellationTokenSource();
        var run = first.RunAsync(stop.Token);

        await Eventually.WaitFor(() => tool.Started == 1 && first.Stats.Pulled == 2 && first.Stats.Blocks.Claim.Queued == 1, Bound, "the duplicate held behind its running original");
        await stop.CancelAsync();
        tool.Release();
        await Eventually.Returns(run, Bound, "the stopped run");

        Assert.Equal(1, first.Stats.Completed);
        var second = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);
        await Eventually.Returns(second.RunAsync(CancellationToken.None), Bound, "the next worker's run");

        Assert.Equal(1, tool.InvocationsOf("c1")); // the next worker does not run a handed-back duplicate
        Assert.Equal(1, first.Stats.Skipped);
        Assert.Equal(0, first.Stats.HandedBack);
    }

    /// <summary>
    /// Ack before dispatch: c1 has run; its duplicate waits in the Claim queue behind a slow claim
    /// when the stop comes. The sweep takes it and nacks it, rather than acking it as a duplicate
    /// of a finished command, and the next worker runs c1 again.
    /// </summary>
    [Fact]
    public async Task A_duplicate_of_a_finished_command_in_the_claim_queue_at_a_stop_is_skipped_not_handed_back()
    {
        var c1 = TestCommands.Make("c1", "counted");
        var source = InMemoryCommandSource.From([c1, TestCommands.Make("slow", "counted"), c1]);
        var slowClaim = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var claimer = new ScriptedClaimer(async (pulled, _) =>
        {
            if (pulled.Command!.CommandId == "slow")
            {
                await slowClaim.Task.ConfigureAwait(false);
                return ClaimOutcome.RetryLater("the claim store is slow", pulled.Command);
            }

            return pulled;
        });
        var runs = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var tool = new ScriptedTool("counted", (cmd, _) =>
        {
            runs.AddOrUpdate(cmd.CommandId, 1, static (_, n) => n + 1);
            return ValueTask.FromResult(ToolResult.Success());
        });
        var options = PipelineHarness.FastOptions() with
        {
            PullParallelism = 1,
            Claim = new BlockOptions { Parallelism = 1 },
            ShutdownTimeout = TimeSpan.FromMinutes(5),
        };
        var first = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(tool), new CollectingSink(), options, claimer);
        using var stop = new CancellationTokenSource();
        var run = first.RunAsync(stop.Token);

        await Eventually.WaitFor(() => first.Stats.Completed == 1 && first.Stats.Pulled == 3 && claimer.Calls == 2 && first.Stats.Blocks.Claim.Queued == 1, Bound, "c1 run, its duplicate queued behind the slow claim");
        await stop.CancelAsync();
        // The slow claim holds Claim's one slot, so only the stop's sweep can reach the duplicate:
        // it is let go once the sweep has nacked it (or after 3 s, for an engine that leaves it to Claim).
        var fallback = Task.Delay(TimeSpan.FromSeconds(3));
        await Eventually.WaitFor(() => first.Stats.HandedBack == 1 || fallback.IsCompleted, Bound, "the sweep done with the Claim queue");
        slowClaim.SetResult();
        await Eventually.Returns(run, Bound, "the stopped run");

        var second = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(tool), new CollectingSink(), PipelineHarness.FastOptions());
        await Eventually.Returns(second.RunAsync(CancellationToken.None), Bound, "the next worker's run");

        Assert.Equal(1, runs.GetValueOrDefault("c1")); // the next worker does not run a handed-back duplicate
        Assert.Equal(1, first.Stats.Skipped);
    }
}
