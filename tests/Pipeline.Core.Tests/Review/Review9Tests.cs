using Microsoft.Extensions.Time.Testing;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Review;

/// <summary>review9: ack before dispatch acks as the tool starts; past the hard deadline nothing starts.</summary>
public sealed class Review9Tests
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

    /// <summary>
    /// "Past the hard deadline nothing starts" held for ack before dispatch only: with ack after
    /// dispatch the commands still queued for a slot were nacked by the deadline's sweep and then
    /// dispatched anyway, their tools invoked with a cancelled token, and command.claimed /
    /// command.started / command.failed written for commands that were given back and never ran.
    /// </summary>
    [Fact]
    public async Task Ack_after_dispatch_past_the_deadline_starts_no_queued_command()
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

        await WaitFor(() => stuck.Started == 2 && pipeline.Stats.Pulled == 10);
        await stop.CancelAsync();
        time.Advance(TimeSpan.FromSeconds(5));
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, pipeline.Stats.InFlight);
        Assert.Equal(10, source.Nacked);
        Assert.Equal(2, stuck.Started); // the eight queued ones never start
        Assert.Equal(2, sink.Events.Count(e => e.EventType == EventTypes.CommandStarted));
    }
}
