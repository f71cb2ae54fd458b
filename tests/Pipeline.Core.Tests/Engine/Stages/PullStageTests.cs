namespace Pipeline.Tests.Engine.Stages;

/// <summary>
/// The Pull block: its loops end on a stop without spinning on the stopping thread, and a loop
/// parked for a free in-flight slot is always woken. Seeded tests print their seed;
/// PIPELINE_TEST_SEED replays one.
/// </summary>
public sealed class PullStageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_stop_while_a_pull_waits_on_its_token_does_not_spin_pulls_on_the_stopping_thread()
    {
        var source = new WaitingSource();
        var options = PipelineHarness.FastOptions() with { PullParallelism = 1, ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options);
        source.Enqueue(TestCommands.Make("a"));

        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => source.Pulled == 1 && source.Settles.Count == 1 && source.Waiting == 1, ConditionBound,
            "'a' settled and the pull loop waiting for the next item");

        var stopping = Stopwatch.StartNew();
        var stopThread = 0;
        var stop = Task.Run(() =>
        {
            stopThread = Environment.CurrentManagedThreadId;
            pipeline.RequestStop();
        });
        await Eventually.Returns(stop, QuickStopBound, "RequestStop");
        var took = stopping.ElapsedMilliseconds;
        await Eventually.Returns(run, QuickStopBound, "after the stop");
        var where = source.LastCancelledCallThread == stopThread ? "on the thread that called RequestStop" : "on another thread";
        output.WriteLine($"RequestStop returned after {took} ms; NextAsync calls with a cancelled token: {source.CancelledCalls}, the last {where}");

        // A loop may make one call with the cancelled token before it sees the stop; the source's
        // escape hatch ends a spin after 10,000 calls (without it RequestStop never returns).
        Assert.True(source.CancelledCalls <= 10,
            $"after the stop NextAsync was called {source.CancelledCalls} times with an already-cancelled token, the last {where}: " +
            "the pull loop ran inline in the token's cancellation and spun before RequestStop could close the Pull block");
    }

    [Theory]
    [InlineData(32, 2, 20261213)]
    [InlineData(64, 5, 20261214)]
    [InlineData(17, 3, 20261215)]
    public async Task Pull_loops_parked_for_a_free_slot_are_always_woken(int maxInFlight, int pullParallelism, int fallbackSeed)
    {
        // Guard: a lost wake-up of a parked pull loop would strand the run before the source is exhausted.
        var seed = Seeds.Or(fallbackSeed);
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed}), MaxInFlight {maxInFlight}, PullParallelism {pullParallelism}");
        const int commands = 20_000;
        var random = new Random(seed);
        var kinds = Enumerable.Range(0, commands).Select(_ => random.Next(3) switch { 0 => "noop", 1 => "yield", _ => "delay" }).ToArray();
        var source = InMemoryCommandSource.From(Enumerable.Range(0, commands).Select(i => TestCommands.Make($"c{i}", kinds[i])));
        var yielding = new ScriptedTool("yield", async (_, _) =>
        {
            await Task.Yield();
            return ToolResult.Success();
        });
        var delaying = new ScriptedTool("delay", async (command, ct) =>
        {
            if (command.CommandId.EndsWith('7'))
            {
                await Task.Delay(1, ct);
            }

            return ToolResult.Success();
        });
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxInFlight = maxInFlight,
            PullParallelism = pullParallelism,
            Dispatch = new BlockOptions { Parallelism = 8 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(yielding, delaying), NullEventSink.Instance, options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(8), $"{commands} commands",
            () => $"pulled {pipeline.Stats.Pulled}, free slots {pipeline.Stats.Blocks.Pull.Queued}, pulls running {pipeline.Stats.Blocks.Pull.Running}");

        Assert.Equal(commands, pipeline.Stats.Pulled);
        Assert.Equal(commands, source.Acked);
    }
}
