using Microsoft.Extensions.Time.Testing;
using Pipeline.Commands;
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

    /// <summary>
    /// Ack before dispatch: the deadline (here StopNow) that comes while the ack is on its way
    /// is not checked again once the ack returns. The command is acked (the deadline's sweep
    /// skips it: its settle has begun) and its tool is then invoked with an already-cancelled
    /// token: acked, never ran, and command.started / command.failed say it ran. Acking "as the
    /// tool starts" still acks strictly before; the window is the ack's round trip (up to
    /// SettleTimeout, plus half of it behind a renewal in progress).
    /// </summary>
    [Fact(Skip = "review9: ack before dispatch awaits the ack, then starts the tool even when the hard deadline fired meanwhile (acked, never ran: its token is already cancelled); closing it needs the tool started alongside the ack, a design change")]
    public async Task Ack_before_dispatch_a_deadline_during_the_ack_does_not_leave_an_acked_command_unrun()
    {
        var source = new SlowAckSource(TestCommands.Make("c0", "probe"));
        var probe = new TokenProbeTool("probe");
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckBeforeDispatch) with { SettleTimeout = TimeSpan.FromSeconds(5) };
        var pipeline = new CommandPipeline<int>(source, PipelineHarness.Tools(probe), sink, options);
        var run = pipeline.RunAsync(CancellationToken.None);

        await WaitFor(() => source.AckCalls == 1);
        pipeline.StopNow();
        await Task.Delay(50);
        source.ReleaseAck();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, source.Acked);
        Assert.Equal(1, probe.Started);
        Assert.Equal(0, probe.StartedCancelled); // an acked command's tool got a real chance to run
    }

    private sealed class SlowAckSource(Command command) : ICommandSource<int>
    {
        private readonly TaskCompletionSource _ack = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _pulled;
        private int _ackCalls;
        private int _acked;

        public int AckCalls => Volatile.Read(ref _ackCalls);

        public int Acked => Volatile.Read(ref _acked);

        public void ReleaseAck() => _ack.TrySetResult();

        public async ValueTask<Pulled<int>?> NextAsync(CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _pulled) == 1)
            {
                return new Pulled<int>(ClaimOutcome.Claimed(command), 1);
            }

            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        }

        public async ValueTask AckAsync(int handle, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _ackCalls);
            await _ack.Task;
            Interlocked.Increment(ref _acked);
        }

        public ValueTask NackAsync(int handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class TokenProbeTool(string kind) : ITool
    {
        private int _started;
        private int _startedCancelled;

        public string Kind => kind;

        public int Started => Volatile.Read(ref _started);

        public int StartedCancelled => Volatile.Read(ref _startedCancelled);

        public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _started);
            if (cancellationToken.IsCancellationRequested)
            {
                Interlocked.Increment(ref _startedCancelled);
            }

            return ValueTask.FromResult(ToolResult.Success());
        }
    }
}
