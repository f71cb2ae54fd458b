namespace Pipeline.Tests.Engine;

/// <summary>
/// How long the engine waits for a settle: its own <see cref="PipelineOptions.SettleTimeout"/>, or,
/// for a source that states its own bound (<see cref="ISupportsSettleTimeout"/>: a store that rides
/// out an outage by retrying), that bound plus the engine's timeout as grace.
/// </summary>
public sealed class SettlerTests
{
    private static readonly TimeSpan EngineSettleTimeout = TimeSpan.FromMilliseconds(200);

    private static async Task<PipelineStats> RunAsync(ICommandSource<int> source)
    {
        var options = PipelineHarness.FastOptions() with { SettleTimeout = EngineSettleTimeout };
        var pipeline = new CommandPipeline<int>(source, PipelineHarness.Tools(), new CollectingSink(), options);
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        return pipeline.Stats;
    }

    [Fact]
    public async Task An_ack_slower_than_the_engines_settle_timeout_is_a_settle_error_when_the_source_states_no_bound()
    {
        var stats = await RunAsync(new SlowAckSource(commands: 3, ackTakes: TimeSpan.FromSeconds(1)));
        Assert.Equal((0L, 3L), (stats.Acked, stats.SettleErrors));
    }

    [Fact]
    public async Task An_ack_within_the_sources_stated_settle_timeout_is_waited_for_past_the_engines()
    {
        var source = new BoundedSource(new SlowAckSource(commands: 3, ackTakes: TimeSpan.FromSeconds(1)), TimeSpan.FromSeconds(5));
        var stats = await RunAsync(source);
        Assert.Equal((3L, 0L), (stats.Acked, stats.SettleErrors));
    }

    [Fact]
    public async Task An_ack_past_the_sources_stated_bound_and_the_engines_grace_is_a_settle_error()
    {
        // Waited for 300 ms + 200 ms at most: an ack of 3 s is cut off, as a source that breaks its word.
        var source = new BoundedSource(new SlowAckSource(commands: 3, ackTakes: TimeSpan.FromSeconds(3)), TimeSpan.FromMilliseconds(300));
        var clock = Stopwatch.StartNew();
        var stats = await RunAsync(source);
        Assert.Equal((0L, 3L), (stats.Acked, stats.SettleErrors));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), $"the run waited {clock.Elapsed} for acks the engine had given up on");
    }

    /// <summary>Hands out <c>commands</c> noops; each ack takes <c>ackTakes</c> (a store riding out an outage).</summary>
    private sealed class SlowAckSource(int commands, TimeSpan ackTakes) : ICommandSource<int>
    {
        private int _next;

        public ValueTask<Pulled<int>?> NextAsync(CancellationToken cancellationToken)
        {
            var handle = Interlocked.Increment(ref _next);
            return ValueTask.FromResult(handle > commands ? null : (Pulled<int>?)new Pulled<int>(ClaimOutcome.Claimed(TestCommands.Make($"c{handle}", executionId: handle)), handle));
        }

        // The token is left alone: the engine only fires it after the shutdown deadline.
        public async ValueTask AckAsync(int handle, CancellationToken cancellationToken) => await Task.Delay(ackTakes, CancellationToken.None);

        public ValueTask NackAsync(int handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>The same source, stating how long its settles may take.</summary>
    private sealed class BoundedSource(SlowAckSource inner, TimeSpan bound) : ICommandSource<int>, ISupportsSettleTimeout
    {
        public TimeSpan SettleTimeout => bound;

        public ValueTask<Pulled<int>?> NextAsync(CancellationToken cancellationToken) => inner.NextAsync(cancellationToken);

        public ValueTask AckAsync(int handle, CancellationToken cancellationToken) => inner.AckAsync(handle, cancellationToken);

        public ValueTask NackAsync(int handle, CancellationToken cancellationToken) => inner.NackAsync(handle, cancellationToken);
    }
}
