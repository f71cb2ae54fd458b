using Microsoft.Extensions.Time.Testing;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Engine;

public sealed class ShutdownTests
{
    private static async Task WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 20 s");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task Work_in_flight_finishes_when_it_beats_the_deadline()
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 50).Select(i => TestCommands.Make($"c{i}", "gated")));
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            PullParallelism = 1,
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = TimeSpan.FromMinutes(5),
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), sink, options);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await WaitFor(() => gated.Started == 2);
        await stop.CancelAsync();
        var pulledAtStop = pipeline.Stats.Pulled;
        gated.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(pulledAtStop, pipeline.Stats.Pulled);
        Assert.Equal(pulledAtStop, source.Acked);
        Assert.Equal(0, source.Nacked);
        Assert.Equal(pulledAtStop, pipeline.Stats.Completed);
        Assert.Equal(50 - pulledAtStop, source.Ready);
    }

    /// <summary>
    /// Ack before dispatch acks as the tool starts, not while the command waits for a slot: at the
    /// deadline the two running ones were acked (they are ours, cut off), and the eight that never
    /// started are nacked for redelivery. Acking them at claim lost them: acked, never run.
    /// </summary>
    [Fact]
    public async Task Ack_before_dispatch_at_the_deadline_nacks_the_commands_that_never_started()
    {
        var time = new FakeTimeProvider();
        var stuck = new GatedTool("stuck");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 10).Select(i => TestCommands.Make($"c{i}", "stuck")));
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckBeforeDispatch) with
        {
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = TimeSpan.FromSeconds(5),
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(stuck), sink, options, timeProvider: time);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await WaitFor(() => stuck.Started == 2 && pipeline.Stats.Pulled == 10);
        Assert.Equal(2, source.Acked); // only the two whose tools started
        await stop.CancelAsync();
        time.Advance(TimeSpan.FromSeconds(5));
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, pipeline.Stats.InFlight);
        Assert.Equal(2, source.Acked);
        Assert.Equal(8, source.Nacked);
        Assert.Equal(8, source.Ready); // back in the source, to run again
        Assert.Equal(2, stuck.Started);
    }

    [Fact]
    public async Task At_the_deadline_running_tools_are_cancelled_and_their_items_nacked()
    {
        var time = new FakeTimeProvider();
        var stuck = new GatedTool("stuck");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 10).Select(i => TestCommands.Make($"c{i}", "stuck")));
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = TimeSpan.FromSeconds(5),
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(stuck), sink, options, timeProvider: time);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await WaitFor(() => stuck.Started == 2);
        await stop.CancelAsync();
        time.Advance(TimeSpan.FromSeconds(4));
        await Task.Delay(50);
        Assert.False(run.IsCompleted, "the pipeline must wait for the deadline");

        time.Advance(TimeSpan.FromSeconds(1));
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var stats = pipeline.Stats;
        Assert.Equal(0, stats.InFlight);
        Assert.Equal(stats.Pulled, source.Nacked);
        Assert.Equal(0, source.Acked);
        Assert.Equal(10, source.Ready);
        Assert.Contains(sink.Events, e => e.EventType == EventTypes.CommandFailed && e.Error!.Contains("shutdown deadline", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_tool_that_overruns_its_timeout_fails_with_a_clear_error()
    {
        var time = new FakeTimeProvider();
        var stuck = new GatedTool("stuck");
        var source = InMemoryCommandSource.From([TestCommands.Make("t", "stuck")]);
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { ToolTimeout = TimeSpan.FromSeconds(10), ToolRetries = 0 };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(stuck), sink, options, timeProvider: time);
        var run = pipeline.RunAsync(CancellationToken.None);

        await WaitFor(() => stuck.Started == 1);
        time.Advance(TimeSpan.FromSeconds(10));
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var failed = sink.For("t").Last();
        Assert.Equal(EventTypes.CommandFailed, failed.EventType);
        Assert.Equal("stuck: timed out after 10000 ms.", failed.Error);
    }

    [Fact]
    public async Task A_pipeline_runs_once()
    {
        var pipeline = new CommandPipeline<DeliveryHandle>(InMemoryCommandSource.From([]), PipelineHarness.Tools(), new CollectingSink());
        await pipeline.RunAsync(CancellationToken.None);
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline.RunAsync(CancellationToken.None));
    }
}
