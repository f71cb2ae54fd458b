namespace Pipeline.Tests.Engine;

/// <summary>
/// The invariant under randomized faults: every pulled handle is settled exactly once, whatever
/// the outcome, the tool, a throwing source or a stop in the middle.
/// Seeded: set PIPELINE_TEST_SEED to replay a printed seed.
/// </summary>
public sealed class ExactlyOnceStressTests(ITestOutputHelper output)
{
    private const int Items = 100_000;

    [Theory]
    [InlineData(AckMode.AckBeforeDispatch, false)]
    [InlineData(AckMode.AckAfterDispatch, false)]
    [InlineData(AckMode.AckBeforeDispatch, true)]
    [InlineData(AckMode.AckAfterDispatch, true)]
    public async Task Every_pulled_handle_is_settled_exactly_once(AckMode mode, bool stopMidway)
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), out var s) ? s : 20261124;
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed}), mode {mode}, stop midway {stopMidway}");
        var random = new Random(seed);
        var gate = new object();
        bool Chance(double p)
        {
            lock (gate)
            {
                return random.NextDouble() < p;
            }
        }

        using var stop = new CancellationTokenSource();
        var hang = new GatedTool("hang"); // never released: every call ends at its timeout or the deadline
        var stopAt = stopMidway ? Items / 2 : long.MaxValue;
        var source = new RecordingSource(handle =>
        {
            // Called under the source's lock, so the generator's draws are in handle order.
            if (handle >= Items)
            {
                return null;
            }

            if (handle == stopAt)
            {
                stop.Cancel();
            }

            var roll = random.NextDouble();
            var id = roll < 0.02 && handle > 0 ? $"c{random.NextInt64(handle)}" : $"c{handle}";
            var command = TestCommands.Make(id, PickTool(random), attempts: random.Next(0, 6));
            return (roll * 10 % 1) switch
            {
                < 0.7 => ClaimOutcome.Claimed(command),
                < 0.8 => ClaimOutcome.AlreadyClaimed(command),
                < 0.9 => ClaimOutcome.RetryLater("injected overload", command),
                _ => ClaimOutcome.Failed("injected refusal", command),
            };
        })
        {
            FailNext = () => Chance(0.01),
            FailSettle = () => Chance(0.01),
        };

        var tools = PipelineHarness.Tools(
            new ScriptedTool("fail", (_, _) => new ValueTask<ToolResult>(ToolResult.Failure("injected failure"))),
            new ScriptedTool("throw", (_, _) => throw new InvalidOperationException("injected exception")),
            new ScriptedTool("transient", (_, _) => new ValueTask<ToolResult>(ToolResult.Failure("injected transient", transient: true))),
            new ScriptedTool("slow", async (_, ct) =>
            {
                await Task.Yield();
                return ToolResult.Success();
            }),
            hang);

        var options = PipelineHarness.FastOptions(mode) with
        {
            PullParallelism = 3,
            Claim = new BlockOptions { Parallelism = 2 },
            AckDecision = new BlockOptions { Parallelism = 2 },
            Dispatch = new BlockOptions { Parallelism = 8 },
            ToolRetries = 1,
            ToolTimeout = TimeSpan.FromMilliseconds(2),
            ShutdownTimeout = TimeSpan.FromMilliseconds(50),
        };
        var pipeline = new CommandPipeline<long>(source, tools, Pipeline.Events.NullEventSink.Instance, options);
        await pipeline.RunAsync(stop.Token).WaitAsync(TimeSpan.FromMinutes(2));

        var stats = pipeline.Stats;
        output.WriteLine($"pulled {source.Pulled}, acked {stats.Acked}, nacked {stats.Nacked}, terminated {stats.Terminated}, settle errors {stats.SettleErrors}, pull errors {stats.PullErrors}");
        Assert.True(source.Pulled > 0);
        if (!stopMidway)
        {
            Assert.Equal(Items, source.Pulled);
        }

        Assert.Equal(0, source.DuplicateSettles);
        Assert.Equal(source.Pulled, source.Settled.Count);
        Assert.Equal(source.Pulled, stats.Pulled);
        Assert.Equal(stats.Pulled, stats.Acked + stats.Nacked + stats.Terminated + stats.SettleErrors);
        Assert.Equal(0, stats.InFlight);
        Assert.Equal(0, stats.InternalErrors);
        Assert.True(stats.SettleErrors > 0, "the run should have injected settle faults");
        Assert.True(stats.PullErrors > 0, "the run should have injected pull faults");
        Assert.True(hang.Ended > 0, "the run should have timed tools out");
    }

    private static string PickTool(Random random) => random.Next(100) switch
    {
        < 45 => "noop",
        < 65 => "slow",
        < 75 => "fail",
        < 85 => "throw",
        < 90 => "transient",
        < 92 => "hang",
        _ => "unknown-kind",
    };
}
