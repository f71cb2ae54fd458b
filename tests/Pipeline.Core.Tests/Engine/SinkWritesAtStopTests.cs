namespace Pipeline.Tests.Engine;

/// <summary>
/// The sink at a stop: RunAsync returns only once the sink's writes have ended (the CLI disposes
/// the sink as soon as it returns), both a write that unwinds after its token fires and the last
/// batch a healthy sink is still writing after the deadline.
/// </summary>
public sealed class SinkWritesAtStopTests
{
    private static Task WaitFor(Func<bool> condition) => Eventually.WaitFor(condition);

    /// <summary>Four commands of a gated tool, all dispatched at once, with a 50 ms shutdown deadline: a stop cuts them all off.</summary>
    private static (InMemoryCommandSource Source, GatedTool Gated, PipelineOptions Options) FourGatedCommands(TimeSpan settleTimeout)
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 4).Select(i => TestCommands.Make($"c{i}", "gated")));
        var options = PipelineHarness.FastOptions() with
        {
            Dispatch = new BlockOptions { Parallelism = 4 },
            ShutdownTimeout = TimeSpan.FromMilliseconds(50),
            SettleTimeout = settleTimeout,
        };
        return (source, gated, options);
    }

    [Fact]
    public async Task A_sink_that_honours_its_token_has_ended_its_write_when_RunAsync_returns()
    {
        // A sink that waits for room downstream and, once told to stop, takes a moment to unwind
        // (a flush, a cancelled socket write). The CLI disposes the sink as soon as RunAsync
        // returns: a write still running then tears a line or meets a disposed stream.
        var sink = new UnwindingSink(TimeSpan.FromMilliseconds(40));
        var (source, gated, options) = FourGatedCommands(settleTimeout: TimeSpan.FromSeconds(2));
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), sink, options, logger: new NoteLogger(sink));
        var writesInProgressAtReturn = -1;
        var run = pipeline.RunAsync(CancellationToken.None)
            .ContinueWith(t => { writesInProgressAtReturn = sink.InProgress; sink.Note("return"); return t; }, TaskContinuationOptions.ExecuteSynchronously).Unwrap();

        await WaitFor(() => gated.Started == 4 && sink.InProgress == 1);
        sink.Note("stop");
        pipeline.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(writesInProgressAtReturn == 0, $"{writesInProgressAtReturn} writes in progress at return: {string.Join(", ", sink.Log)}");
        Assert.Equal(pipeline.Stats.Pulled, source.Acked + source.Nacked);
    }

    [Fact]
    public async Task The_last_batch_a_healthy_sink_is_writing_after_the_deadline_is_waited_for()
    {
        // After the deadline the failures of the cancelled commands go to the sink in one batch;
        // their deliveries are freed as the batch is made. A write that takes a while is still
        // within the settle budget: RunAsync must not return (and the CLI dispose the sink) under it.
        var sink = new SlowSink(TimeSpan.FromMilliseconds(400));
        var (source, gated, options) = FourGatedCommands(settleTimeout: TimeSpan.FromSeconds(5));
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), sink, options);
        var writesInProgressAtReturn = -1;
        var run = pipeline.RunAsync(CancellationToken.None)
            .ContinueWith(t => { writesInProgressAtReturn = sink.InProgress; return t; }, TaskContinuationOptions.ExecuteSynchronously).Unwrap();

        await WaitFor(() => gated.Started == 4 && sink.InProgress == 0 && pipeline.Stats.EventsEmitted > 0);
        pipeline.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, writesInProgressAtReturn);
        Assert.Equal(0, pipeline.Stats.EventsDropped);
        Assert.Equal(4, sink.Failed);
    }

    /// <summary>A healthy sink that takes <paramref name="latency"/> per write (honouring its token).</summary>
    private sealed class SlowSink(TimeSpan latency) : IEventSink
    {
        private int _inProgress;
        private int _failed;

        public int InProgress => Volatile.Read(ref _inProgress);

        public int Failed => Volatile.Read(ref _failed);

        public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _inProgress);
            try
            {
                await Task.Delay(latency, cancellationToken).ConfigureAwait(false);
                foreach (var e in batch.Span)
                {
                    if (e.EventType == EventTypes.CommandFailed)
                    {
                        Interlocked.Increment(ref _failed);
                    }
                }
            }
            finally
            {
                Interlocked.Decrement(ref _inProgress);
            }
        }
    }

    private sealed class NoteLogger(UnwindingSink sink) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            sink.Note(formatter(state, exception));
    }

    /// <summary>Every write waits until its token fires, then takes <paramref name="unwind"/> to return; one begun with its token cancelled returns at once.</summary>
    private sealed class UnwindingSink(TimeSpan unwind) : IEventSink
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private int _inProgress;

        public System.Collections.Concurrent.ConcurrentQueue<string> Log { get; } = new();

        public void Note(string what) => Log.Enqueue($"{_clock.ElapsedMilliseconds} {what}");

        public int InProgress => Volatile.Read(ref _inProgress);

        public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            Log.Enqueue($"{_clock.ElapsedMilliseconds} begin {batch.Length} cancelled={cancellationToken.IsCancellationRequested}");
            cancellationToken.ThrowIfCancellationRequested();
            Interlocked.Increment(ref _inProgress);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                Note("token");
                await Task.Delay(unwind, CancellationToken.None).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
            }
            finally
            {
                Interlocked.Decrement(ref _inProgress);
                Log.Enqueue($"{_clock.ElapsedMilliseconds} end");
            }
        }
    }
}
