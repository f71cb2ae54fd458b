using System.Collections.Concurrent;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Sources;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Engine.Stages;

/// <summary>The Claim block: when a command id counts as held, and what becomes of the duplicates it holds.</summary>
public sealed class ClaimStageTests
{
    /// <summary>
    /// Two deliveries of one message (as JetStream redelivers it): the first's claim is answered
    /// "retry later" only after the redelivery was pulled. The id must not be taken for a running
    /// command meanwhile, or the redelivery is acked as a duplicate and the command never runs
    /// (it did, in 20 of 20 runs, when the id was recorded before the claim).
    /// </summary>
    [Theory]
    [InlineData(AckMode.AckBeforeDispatch)]
    [InlineData(AckMode.AckAfterDispatch)]
    public async Task A_redelivery_pulled_while_the_first_claim_answers_retry_later_runs_the_command(AckMode mode)
    {
        for (var run = 0; run < 20; run++)
        {
            var command = TestCommands.Make("c1", "counted");
            var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
            var calls = 0;
            var claimer = new ScriptedClaimer(async (pulled, _) =>
            {
                if (Interlocked.Increment(ref calls) == 1)
                {
                    await Eventually.WaitFor(() => source.Pulled == 2, TimeSpan.FromSeconds(20), "the redelivery pulled");
                    await Task.Delay(50);
                    return ClaimOutcome.RetryLater("the control plane said 503", pulled.Command);
                }

                return pulled;
            });
            var runs = 0;
            var tool = new ScriptedTool("counted", (_, _) =>
            {
                Interlocked.Increment(ref runs);
                return ValueTask.FromResult(ToolResult.Success());
            });
            var options = PipelineHarness.FastOptions(mode) with { Claim = new BlockOptions { Parallelism = 2 } };
            var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options, claimer);

            await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(1, runs);
            Assert.Equal(1, pipeline.Stats.Completed);
            Assert.Equal(0, pipeline.Stats.Skipped);
            // Either delivery may be the one whose claim is asked first (claims run two at a time):
            // that one is nacked, the other runs and is acked.
            Assert.Equal([SettleKind.Acked, SettleKind.Nacked], source.Settled.Values.Order());
        }
    }

    /// <summary>
    /// With ack after dispatch a duplicate of a running command waits behind it. When the source
    /// runs out meanwhile and the original fails, the duplicate is claimed again and runs: it is
    /// not nacked as "still open at the end of the run" nor counted as a deadline settle.
    /// </summary>
    [Fact]
    public async Task A_duplicate_held_when_the_source_runs_out_runs_after_its_original_fails()
    {
        var command = TestCommands.Make("c1", "tracked");
        var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
        var tool = new TrackingTool("tracked", (_, nth) => nth == 1 ? ToolResult.Failure("boom", transient: true) : ToolResult.Success());
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ToolRetries = 0 };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);

        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => tool.Started == 1 && source.Pulled == 2 && pipeline.Stats.Blocks.Claim.Queued == 1, TimeSpan.FromSeconds(20), "the duplicate held behind its running original");
        tool.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, tool.InvocationsOf("c1"));
        Assert.Empty(tool.Violations);
        Assert.Equal(1, pipeline.Stats.Retried);
        Assert.Equal(1, pipeline.Stats.Completed);
        Assert.Equal(0, pipeline.Stats.DeadlineSettles);
        // The original (whichever delivery was claimed first) nacked, the duplicate run and acked.
        Assert.Equal([SettleKind.Acked, SettleKind.Nacked], source.Settled.Values.Order());
    }

    /// <summary>As above with an original that succeeds: the held duplicate is acked and counted as skipped, nothing else.</summary>
    [Fact]
    public async Task A_duplicate_held_when_the_source_runs_out_is_skipped_after_its_original_succeeds()
    {
        var command = TestCommands.Make("c1", "tracked");
        var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
        var tool = new TrackingTool("tracked");
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), sink, options);

        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => tool.Started == 1 && source.Pulled == 2 && pipeline.Stats.Blocks.Claim.Queued == 1, TimeSpan.FromSeconds(20), "the duplicate held behind its running original");
        tool.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, tool.InvocationsOf("c1"));
        Assert.Equal(1, pipeline.Stats.Completed);
        Assert.Equal(1, pipeline.Stats.Skipped);
        Assert.Equal(0, pipeline.Stats.DeadlineSettles);
        Assert.Equal(0, pipeline.Stats.Nacked);
        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        Assert.Equal(SettleKind.Acked, source.Settled[1]);
        Assert.Contains(sink.Events, e => e.EventType == "command.skipped");
    }

    /// <summary>
    /// A claimer is told which delivery it claims: the description the source gave for that very
    /// handle (a claim that depends on the delivery, e.g. the KV claimer's stream sequence, is
    /// otherwise made for the wrong one). Many commands, claimed eight at a time by a claimer that
    /// yields at random, so a context built from a delivery other than the one claimed would show.
    /// </summary>
    [Fact]
    public async Task A_claimer_gets_the_delivery_information_the_source_gave_for_that_very_delivery()
    {
        const int count = 2_000;
        var source = new DescribingSource(count);
        var claimer = new ContextRecordingClaimer(seed: 15);
        var options = PipelineHarness.FastOptions() with { Claim = new BlockOptions { Parallelism = 8 }, Dispatch = new BlockOptions { Parallelism = 8 } };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(count, pipeline.Stats.Completed);
        Assert.Equal(count, claimer.Seen.Count);
        foreach (var (command, delivery) in claimer.Seen)
        {
            // Handle n carries command "c{n}", and the source describes handle n as Described(n).
            var handle = long.Parse(command.CommandId.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(new Described(handle), delivery);
        }

        Assert.Equal(count, claimer.Seen.Select(seen => seen.Command.CommandId).Distinct().Count());
    }

    /// <summary>A source without <see cref="ISupportsDeliveryInfo{THandle}"/>: the claimer gets the pulled command and no delivery.</summary>
    [Fact]
    public async Task Without_the_capability_a_claimer_gets_no_delivery_information()
    {
        var source = new RecordingSource(Enumerable.Range(0, 50).Select(i => ClaimOutcome.Claimed(TestCommands.Make($"c{i}"))));
        var claimer = new ContextRecordingClaimer(seed: 15);
        var options = PipelineHarness.FastOptions() with { Claim = new BlockOptions { Parallelism = 4 } };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(50, pipeline.Stats.Completed);
        Assert.Equal(50, claimer.Seen.Count);
        Assert.All(claimer.Seen, seen => Assert.Null(seen.Delivery));
    }

    /// <summary>Without a claimer (the pass-through) the source is never asked to describe a delivery: runs without one pay nothing for the context.</summary>
    [Fact]
    public async Task Without_a_claimer_the_source_is_never_asked_to_describe_a_delivery()
    {
        var source = new DescribingSource(200);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(200, pipeline.Stats.Completed);
        Assert.Equal(0, source.DescribeCalls);
    }

    /// <summary>What <see cref="DescribingSource"/> says of handle <paramref name="Handle"/>.</summary>
    private sealed record Described(long Handle);

    /// <summary>Hands out <c>c{n}</c> on handle n and describes each delivery by its handle; acks and nacks are ignored.</summary>
    private sealed class DescribingSource(int count) : ICommandSource<long>, ISupportsDeliveryInfo<long>
    {
        private long _next = -1;
        private int _described;

        public int DescribeCalls => Volatile.Read(ref _described);

        public ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
        {
            var handle = Interlocked.Increment(ref _next);
            return new(handle < count ? new Pulled<long>(ClaimOutcome.Claimed(TestCommands.Make($"c{handle}")), handle) : null);
        }

        public object? DeliveryOf(long handle)
        {
            Interlocked.Increment(ref _described);
            return new Described(handle);
        }

        public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask NackAsync(long handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>Claims everything, yielding or waiting a moment at random first (so claims interleave); records each context's command and delivery.</summary>
    private sealed class ContextRecordingClaimer(int seed) : IClaimer
    {
        private readonly Random _random = new(seed);

        public ConcurrentBag<(Command Command, object? Delivery)> Seen { get; } = [];

        public async ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
        {
            int pause;
            lock (_random)
            {
                pause = _random.Next(4);
            }

            if (pause == 0)
            {
                await Task.Delay(1, cancellationToken);
            }
            else
            {
                await Task.Yield();
            }

            Seen.Add((context.Command!, context.Delivery));
            return context.Pulled;
        }
    }
}
