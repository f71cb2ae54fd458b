using System.Threading.Tasks.Dataflow;
using Microsoft.Extensions.Logging;
using Pipeline.Commands;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Engine;

/// <summary>What the Emit block does with a healthy, a failing, a recovering and a Dataflow sink, and what a block fault does.</summary>
public sealed class EmitTests
{
    [Fact]
    public async Task Events_can_be_linked_into_a_dataflow_network_of_your_own()
    {
        const int count = 300;
        var received = new List<PipelineEvent>();
        // A bounded target: the sink waits for room, which is the pipeline's back-pressure.
        var target = new ActionBlock<PipelineEvent>(e => received.Add(e), new ExecutionDataflowBlockOptions { BoundedCapacity = 4 });
        var source = new RecordingSource(Enumerable.Range(0, count).Select(i => ClaimOutcome.Claimed(TestCommands.Make($"c{i}"))));
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new TargetBlockEventSink(target), PipelineHarness.FastOptions());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        target.Complete();
        await target.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(3 * count, received.Count);
        Assert.Equal(3 * count, pipeline.Stats.EventsEmitted);
        Assert.Equal([EventTypes.CommandClaimed, EventTypes.CommandStarted, EventTypes.CommandCompleted], received.Where(e => e.CommandId == "c7").Select(e => e.EventType));
    }

    [Fact]
    public async Task Events_stuck_in_a_write_that_ignores_its_token_are_counted_dropped_when_the_run_returns_and_only_once()
    {
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("stuck"))]);
        var sink = new BlockingSink(honourToken: false);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions() with
        {
            ShutdownTimeout = TimeSpan.FromMilliseconds(200),
        });

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => sink.Writes == 1, TimeSpan.FromSeconds(10), "the one batch is in the sink");
            pipeline.RequestStop();
            await Eventually.Returns(run, TimeSpan.FromSeconds(10), "a sink that ignores its token");

            // Claimed, started, completed: in the write that never returned, so dropped, not lost from the counts.
            Assert.Equal(0, pipeline.Stats.EventsEmitted);
            Assert.Equal(3, pipeline.Stats.EventsDropped);
        }
        finally
        {
            sink.Release();
        }

        await Task.Delay(200); // the write ends late: it is not counted again
        Assert.Equal(0, pipeline.Stats.EventsEmitted);
        Assert.Equal(3, pipeline.Stats.EventsDropped);
    }

    [Fact]
    public async Task A_target_block_that_declines_is_a_failing_sink_not_a_hang()
    {
        var target = new BufferBlock<PipelineEvent>();
        target.Complete(); // declines everything from now on
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a"))]);
        // The default, Backpressure, would retry a failing sink until the deadline; a declining
        // target is closed for good, so its batch is dropped at once.
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new TargetBlockEventSink(target), PipelineHarness.FastOptions());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(3, pipeline.Stats.EventsDropped);
        Assert.Equal(SettleKind.Acked, source.Settled[0]);
    }

    [Fact]
    public async Task With_backpressure_a_failing_sink_holds_the_pulls_and_loses_no_event_when_it_recovers()
    {
        var failing = 1;
        var sink = new CollectingSink { FailWrite = () => Volatile.Read(ref failing) == 1 };
        const int count = 200;
        var source = new RecordingSource(handle => handle < count ? ClaimOutcome.Claimed(TestCommands.Make($"c{handle}")) : null);
        var options = PipelineHarness.FastOptions() with
        {
            SinkFailure = SinkFailureAction.Backpressure,
            MaxInFlight = 16,
            EmitBatchSize = 3,
            EmitRetryBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(5) },
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options);
        var run = pipeline.RunAsync(CancellationToken.None);

        // While the sink fails, pulls stop at the bound, worked out by hand: the first item's
        // events (one batch of 3) are in the write being retried, its slot already free, and 16
        // more items wait in Emit holding the 16 slots: 17 pulled.
        await Eventually.WaitFor(() => source.Pulled >= 17, TimeSpan.FromSeconds(10), "the pipeline filled");
        await Task.Delay(200);
        Assert.Equal(17, source.Pulled);
        Assert.Equal(16, pipeline.Stats.Blocks.Emit.Queued + pipeline.Stats.Blocks.Emit.Running);
        Assert.True(sink.Writes > 1, "the batch is retried while the sink fails");
        // Settles never wait for events: every pulled handle is acked already.
        Assert.Equal(source.Pulled, source.Settled.Count);

        Volatile.Write(ref failing, 0);
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(count, source.Pulled);
        Assert.Equal(3 * count, sink.Events.Count);
        Assert.Equal(0, pipeline.Stats.EventsDropped);
        Assert.Equal(3 * count, sink.Events.Select(e => (e.CommandId, e.EventType)).Distinct().Count());
    }

    [Fact]
    public async Task With_drop_a_dead_sink_is_cut_off_by_the_breaker_and_work_goes_on()
    {
        var sink = new CollectingSink { FailWrite = () => true };
        const int count = 2_000;
        var source = new RecordingSource(handle => handle < count ? ClaimOutcome.Claimed(TestCommands.Make($"c{handle}")) : null);
        var options = PipelineHarness.FastOptions() with
        {
            SinkFailure = SinkFailureAction.Drop,
            EmitRetries = 2,
            EmitBatchSize = 3,
            EmitRetryBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.FromSeconds(30) },
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options);

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(count, source.Settled.Count);
        Assert.Equal(3 * count, pipeline.Stats.EventsDropped);
        // At most a few hundred batches of 3 went by; once the breaker opened (after 4 failed
        // calls) it dropped the rest without calling the sink for its 30 s break.
        Assert.InRange(sink.Writes, 4, 6);
    }

    [Theory]
    [InlineData("Pull")]
    [InlineData("Claim")]
    [InlineData("Ack-decision")]
    [InlineData("Dispatch")]
    [InlineData("Emit")]
    public async Task A_block_fault_stops_the_run_loudly_and_every_handle_is_still_settled(string block)
    {
        var gate = new GatedTool("gated");
        var source = new RecordingSource(handle => handle < 5_000 ? ClaimOutcome.Claimed(TestCommands.Make($"c{handle}", handle < 8 ? "gated" : "noop")) : null);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(gate), new CollectingSink(), PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxInFlight = 64,
            Dispatch = new BlockOptions { Parallelism = 4 },
        });
        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => gate.Started == 4, TimeSpan.FromSeconds(10), "four gated tools running");

        pipeline.FaultBlock(block, new InvalidOperationException("injected block fault"));
        gate.Release();
        var fault = await Assert.ThrowsAsync<PipelineFaultedException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal("injected block fault", fault.InnerException!.Message);
        Assert.Equal(1, pipeline.Stats.BlockFaults);
        Assert.True(source.Pulled < 5_000, "a fault stops the pulls");
        Assert.Equal(source.Pulled, source.Settled.Count);
        Assert.Equal(0, source.DuplicateSettles);
        Assert.Equal(0, pipeline.Stats.InFlight);
    }

    [Fact]
    public async Task A_logger_that_throws_changes_nothing()
    {
        var source = new RecordingSource(handle => handle < 500 ? ClaimOutcome.Claimed(TestCommands.Make($"c{handle}")) : null)
        {
            FailSettle = () => true, // every settle fails and is logged
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions(), logger: new ThrowingLogger());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(500, source.Settled.Count);
        Assert.Equal(500, pipeline.Stats.SettleErrors);
        Assert.Equal(0, pipeline.Stats.BlockFaults);
        Assert.Equal(0, pipeline.Stats.InternalErrors);
    }

    private sealed class ThrowingLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => throw new InvalidOperationException("the logger failed");

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException($"the logger failed on: {formatter(state, exception)}");
    }
}
