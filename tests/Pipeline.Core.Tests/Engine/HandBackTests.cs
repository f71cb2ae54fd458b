namespace Pipeline.Tests.Engine;

/// <summary>
/// The stop's hand-back (PipelineRuntime.HandBackQueuedAsync): the drain waits for what the sweep
/// has taken, so RunAsync does not return while a swept delivery's claim release or nack is still
/// in progress, and a claim that cannot be released keeps its command, which runs.
/// </summary>
public sealed class HandBackTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    /// <summary>One pull loop and one tool at a time and a shutdown timeout no test reaches; the settle budget FastOptions' unless given.</summary>
    private static PipelineOptions OneAtATime(TimeSpan? settleTimeout = null)
    {
        var options = PipelineHarness.FastOptions() with
        {
            PullParallelism = 1,
            Dispatch = new BlockOptions { Parallelism = 1 },
            ShutdownTimeout = TimeSpan.FromMinutes(5),
        };
        return settleTimeout is { } budget ? options with { SettleTimeout = budget } : options;
    }

    /// <summary>
    /// Runs <paramref name="pipeline"/> (<paramref name="open"/> once it returns, or after 5 s), stops
    /// it once <paramref name="ready"/> holds, waits until the stop's sweep is <paramref name="sweeping"/>,
    /// then lets the running tool finish and waits (30 s at most) for the run.
    /// </summary>
    private static async Task RunAndStopDuringTheSweepAsync(CommandPipeline<DeliveryHandle> pipeline, GatedTool gated, Action open, (Func<bool> Holds, string What) ready, (Func<bool> Holds, string What) sweeping)
    {
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);
        OpenWhenReturned(run, open);
        await Eventually.WaitFor(ready.Holds, Bound, ready.What);
        await stop.CancelAsync();
        await Eventually.WaitFor(sweeping.Holds, Bound, sweeping.What);
        gated.Release();
        await Eventually.Returns(run, TimeSpan.FromSeconds(30), "the stopped run");
    }

    /// <summary>Opens a gate when the run returns, or after 5 s (for an engine that waits for what the gate holds back).</summary>
    private static void OpenWhenReturned(Task run, Action open)
    {
        _ = run.ContinueWith(_ => open(), TaskScheduler.Default);
        _ = Task.Delay(TimeSpan.FromSeconds(5)).ContinueWith(_ => open(), TaskScheduler.Default);
    }

    /// <summary>
    /// The sweep takes two commands from the Dispatch queue and nacks them; the source answers the
    /// nacks a moment later (a network round trip). The one running tool then ends, the blocks
    /// drain (the Dispatch block finds its two queue entries taken) and RunAsync returns without
    /// waiting for the nacks: AbandonPending counts them as settle errors (the worker exits 1) and
    /// the caller disposes the source under them, though no deadline passed and the settle
    /// budget is 30 s. The gate opens when RunAsync returns (or after 5 s, for a fixed engine
    /// that waits for its hand-backs).
    /// </summary>
    [Fact]
    public async Task RunAsync_does_not_return_while_a_swept_hand_back_nack_is_still_in_progress()
    {
        var gated = new GatedTool("gated");
        var source = new SlowNackSource(InMemoryCommandSource.From(Enumerable.Range(0, 3).Select(i => TestCommands.Make($"c{i}", "gated"))));
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), new CollectingSink(), OneAtATime(settleTimeout: TimeSpan.FromSeconds(30)));

        await RunAndStopDuringTheSweepAsync(
            pipeline, gated, source.OpenNacks,
            (() => gated.Started == 1 && pipeline.Stats.Blocks.Dispatch.Queued == 2, "c0 running, c1 and c2 waiting for its slot"),
            (() => source.NacksBegun == 2, "the sweep's two hand-back nacks begun"));

        Assert.Equal(2, pipeline.Stats.HandedBack);
        Assert.Equal(0, pipeline.Stats.SettleErrors); // no nack abandoned by a run that did not wait for it
        Assert.Equal(2, pipeline.Stats.Nacked);
        Assert.Equal(1, pipeline.Stats.Acked);
    }

    /// <summary>
    /// As above with a claim that is released before the nack (IClaimRecorder, as the KV claimer
    /// or a control plane's): the sweep takes c1 from the Dispatch queue and calls ReleaseAsync,
    /// which takes a moment. The drain ends meanwhile, and RunAsync's end-of-run sweep finds c1
    /// still open and nacks it as "a block faulted" (a deadline settle, though nothing faulted and
    /// no deadline passed), before its claim was released: a second worker that gets the
    /// redelivery meanwhile is answered "already claimed", acks and skips it, and the command is
    /// lost once the release lands.
    /// </summary>
    [Fact]
    public async Task A_swept_command_whose_claim_release_takes_a_moment_is_not_nacked_before_the_release()
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 2).Select(i => TestCommands.Make($"c{i}", "gated")));
        var claimer = new SlowReleaseClaimer(source);
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), new CollectingSink(), OneAtATime(settleTimeout: TimeSpan.FromSeconds(30)), claimer);

        await RunAndStopDuringTheSweepAsync(
            pipeline, gated, claimer.OpenReleases,
            (() => gated.Started == 1 && pipeline.Stats.Blocks.Dispatch.Queued == 1, "c0 running, c1 waiting for its slot"),
            (() => claimer.ReleasesBegun == 1, "the sweep releasing c1's claim"));
        await Eventually.WaitFor(() => claimer.NackedWhenReleased.Count == 1, Bound, "c1's release ended");

        Assert.Equal(0, pipeline.Stats.DeadlineSettles); // not nacked as "a block faulted"
        Assert.Equal(1, pipeline.Stats.HandedBack);
        Assert.Equal(0, claimer.NackedWhenReleased.Single()); // the nack must follow the release
    }

    /// <summary>
    /// A claim that is ownership elsewhere "must not be handed back without being released, or
    /// the command is lost" (issue 14). When the release fails (the claim store is away), the
    /// hand-back nacks the command anyway (HandBackAsync: ReleaseClaimAsync logs and counts the
    /// failure, then the nack goes ahead): the claim stays held, the redelivery is answered
    /// "already claimed" wherever it lands, and the command never runs. Kept and run within the
    /// shutdown timeout instead, it would run once.
    /// </summary>
    [Fact]
    public async Task A_command_whose_claim_release_fails_at_a_stop_is_kept_and_run_not_nacked_claimed()
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 3).Select(i => TestCommands.Make($"c{i}", "gated")));
        var claimer = new FailingReleaseClaimer();
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), new CollectingSink(), OneAtATime(), claimer);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await Eventually.WaitFor(() => gated.Started == 1 && pipeline.Stats.Blocks.Dispatch.Queued == 2, Bound, "c0 running, c1 and c2 waiting for its slot");
        await stop.CancelAsync();
        // Either handed back (nacked) or kept: wait until the sweep has decided both (or 3 s).
        var fallback = Task.Delay(TimeSpan.FromSeconds(3));
        await Eventually.WaitFor(() => claimer.ReleasesTried == 2 || fallback.IsCompleted, Bound, "the sweep done");
        gated.Release();
        await Eventually.Returns(run, TimeSpan.FromSeconds(30), "the stopped run");

        Assert.Equal(0, source.Nacked); // none nacked with its claim still held (that command would be lost)
        Assert.Equal(3, gated.Started);
    }

    /// <summary>A source whose nacks are answered only when the test opens the gate (a network round trip that takes a moment).</summary>
    private sealed class SlowNackSource(InMemoryCommandSource inner) : ICommandSource<DeliveryHandle>
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _nacksBegun;

        public int NacksBegun => Volatile.Read(ref _nacksBegun);

        public void OpenNacks() => _open.TrySetResult();

        public ValueTask<Pulled<DeliveryHandle>?> NextAsync(CancellationToken cancellationToken) => inner.NextAsync(cancellationToken);

        public ValueTask AckAsync(DeliveryHandle handle, CancellationToken cancellationToken) => inner.AckAsync(handle, cancellationToken);

        public async ValueTask NackAsync(DeliveryHandle handle, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _nacksBegun);
            await _open.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            await inner.NackAsync(handle, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A claimer that can release its claims, slowly (a KV write); records how many nacks the source had taken as each release ended.</summary>
    private sealed class SlowReleaseClaimer(InMemoryCommandSource source) : IClaimer, IClaimRecorder
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _releasesBegun;

        public int ReleasesBegun => Volatile.Read(ref _releasesBegun);

        public System.Collections.Concurrent.ConcurrentQueue<long> NackedWhenReleased { get; } = new();

        public void OpenReleases() => _open.TrySetResult();

        public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken) => new(context.Pulled);

        public async ValueTask ReleaseAsync(ClaimOutcome claimed, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _releasesBegun);
            await _open.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            NackedWhenReleased.Enqueue(source.Nacked);
        }

        public ValueTask RecordOutcomeAsync(ClaimOutcome claimed, bool succeeded, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>A claimer whose release fails (the claim store is away).</summary>
    private sealed class FailingReleaseClaimer : IClaimer, IClaimRecorder
    {
        private int _releasesTried;

        public int ReleasesTried => Volatile.Read(ref _releasesTried);

        public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken) => new(context.Pulled);

        public ValueTask ReleaseAsync(ClaimOutcome claimed, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _releasesTried);
            return ValueTask.FromException(new IOException("the claim store is away"));
        }

        public ValueTask RecordOutcomeAsync(ClaimOutcome claimed, bool succeeded, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
