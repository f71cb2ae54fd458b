namespace Pipeline.Tests.Engine;

/// <summary>
/// A stop before the deadline: what has not started is handed back at once, running tools finish,
/// claims that cannot be released are kept and run; StopNow before, twice and after a run.
/// </summary>
public sealed class ShutdownTests
{
    /// <summary>One pull loop, two tools at a time, and a shutdown timeout no test reaches: a stop drains or hands back.</summary>
    private static PipelineOptions TwoToolsAtATime(AckMode mode = AckMode.AckBeforeDispatch) => PipelineHarness.FastOptions(mode) with
    {
        PullParallelism = 1,
        Dispatch = new BlockOptions { Parallelism = 2 },
        ShutdownTimeout = TimeSpan.FromMinutes(5),
    };

    /// <summary>
    /// A stop hands back at once what has not started (nacked: another worker gets it now, not
    /// after the running tools free a slot) and lets the running tools finish: in both ack modes.
    /// </summary>
    [Theory]
    [InlineData(AckMode.AckAfterDispatch)]
    [InlineData(AckMode.AckBeforeDispatch)]
    public async Task A_stop_hands_back_the_commands_that_have_not_started_and_lets_the_running_ones_finish(AckMode mode)
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 50).Select(i => TestCommands.Make($"c{i}", "gated")));
        var sink = new CollectingSink();
        var options = TwoToolsAtATime(mode);
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), sink, options);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await Eventually.WaitFor(() => gated.Started == 2 && pipeline.Stats.Pulled > 10);
        await stop.CancelAsync();
        // Handed back while the two tools still run: nothing waits for a slot.
        await Eventually.WaitFor(() => source.Nacked == pipeline.Stats.Pulled - 2);
        Assert.Equal(0, source.Acked - (mode == AckMode.AckBeforeDispatch ? 2 : 0));
        gated.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var pulled = pipeline.Stats.Pulled;
        Assert.Equal(2, gated.Started); // no command that was handed back ran
        Assert.Equal(2, pipeline.Stats.Completed);
        Assert.Equal(2, source.Acked);
        Assert.Equal(pulled - 2, source.Nacked);
        Assert.Equal(pulled - 2, pipeline.Stats.HandedBack);
        Assert.Equal(0, pipeline.Stats.DeadlineSettles);
        Assert.Equal(0, pipeline.Stats.InFlight);
        Assert.Equal(48, source.Ready); // every command not run is back at the source
    }

    /// <summary>
    /// A claim granted by a claimer that cannot release it (ownership kept elsewhere, as a control
    /// plane's) must not be handed back by a nack alone, or the command is claimed and never run:
    /// those commands stay and run within the shutdown timeout. Only what was never claimed goes back.
    /// </summary>
    [Fact]
    public async Task A_stop_keeps_commands_whose_claim_cannot_be_released_and_runs_them()
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 20).Select(i => TestCommands.Make($"c{i}", "gated")));
        var claimer = new ScriptedClaimer();
        var options = TwoToolsAtATime();
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), new CollectingSink(), options, claimer);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await Eventually.WaitFor(() => gated.Started == 2 && claimer.Calls == 20);
        await stop.CancelAsync();
        gated.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(20, gated.Started); // each claimed command ran, none was handed back claimed
        Assert.Equal(20, pipeline.Stats.Completed);
        Assert.Equal(0, pipeline.Stats.HandedBack);
        Assert.Equal(20, source.Acked);
    }

    /// <summary>A claimer that can release its claims (<see cref="IClaimRecorder"/>) is told before each hand-back's nack, and of each outcome.</summary>
    [Fact]
    public async Task A_stop_releases_the_claim_of_each_command_it_hands_back_before_the_nack()
    {
        var gated = new GatedTool("gated");
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 20).Select(i => TestCommands.Make($"c{i}", "gated")));
        var claimer = new RecordingClaimer(source);
        var options = TwoToolsAtATime();
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gated), new CollectingSink(), options, claimer);
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(stop.Token);

        await Eventually.WaitFor(() => gated.Started == 2 && claimer.Claimed.Count == 20);
        await stop.CancelAsync();
        await Eventually.WaitFor(() => source.Nacked == 18);
        gated.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, gated.Started);
        Assert.Equal(18, pipeline.Stats.HandedBack);
        Assert.Equal(18, claimer.Released.Count);
        // Each release comes before its own nack: the last release still finds a nack to come.
        Assert.True(claimer.Released.Max(r => r.NackedBefore) < 18, "a claim was released after its nack");
        Assert.Equal(claimer.Claimed.Except(claimer.Released.Select(r => r.Id)).Order(), claimer.Completed.Order());
        Assert.Equal(2, claimer.Completed.Count);
    }

    /// <summary>Records what the engine tells it, and how many nacks the source had taken at each release.</summary>
    private sealed class RecordingClaimer(InMemoryCommandSource source) : IClaimer, IClaimRecorder
    {
        public System.Collections.Concurrent.ConcurrentBag<string> Claimed { get; } = [];

        public System.Collections.Concurrent.ConcurrentBag<(string Id, long NackedBefore)> Released { get; } = [];

        public System.Collections.Concurrent.ConcurrentBag<string> Completed { get; } = [];

        public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
        {
            Claimed.Add(context.Command!.CommandId);
            return new(context.Pulled);
        }

        public ValueTask ReleaseAsync(ClaimOutcome claimed, CancellationToken cancellationToken)
        {
            Released.Add((claimed.Command!.CommandId, source.Nacked));
            return ValueTask.CompletedTask;
        }

        public ValueTask RecordOutcomeAsync(ClaimOutcome claimed, bool succeeded, CancellationToken cancellationToken)
        {
            Assert.True(succeeded);
            Completed.Add(claimed.Command!.CommandId);
            return ValueTask.CompletedTask;
        }
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

        await Eventually.WaitFor(() => stuck.Started == 1);
        time.Advance(TimeSpan.FromSeconds(10));
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var failed = sink.For("t").Last();
        Assert.Equal(EventTypes.CommandFailed, failed.EventType);
        Assert.Equal("stuck: timed out after 10000 ms.", failed.Error);
    }

    /// <summary>
    /// After the hard deadline a healthy sink's token fires with a fifth of the settle budget left,
    /// so a sink that honours it has ended its write when RunAsync returns (the CLI disposes the sink
    /// next). A thread pool with no free thread holds back every timer at once and then runs them
    /// together: the fifth is still the sink's. With two timers armed side by side the token fired,
    /// late, together with the end of the budget, and RunAsync returned 1 ms after it (a CI run).
    /// </summary>
    [Fact]
    public async Task A_sink_token_held_up_with_the_other_timers_still_leaves_the_sink_a_fifth_of_the_settle_budget()
    {
        var time = new StallingTimeProvider();
        var releaseTool = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hangs = new ScriptedTool("hangs", async (_, _) =>
        {
            await releaseTool.Task; // ignores its token: its delivery is open at the deadline
            return ToolResult.Success();
        });
        var sink = new HeldUnwindSink();
        var budget = TimeSpan.FromSeconds(2);
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { SettleTimeout = budget };
        var pipeline = new CommandPipeline<DeliveryHandle>(InMemoryCommandSource.From([TestCommands.Make("c0", "hangs")]), PipelineHarness.Tools(hangs), sink, options, timeProvider: time);
        var writesInProgressAtReturn = -1;
        var run = pipeline.RunAsync(CancellationToken.None)
            .ContinueWith(t => { writesInProgressAtReturn = sink.InProgress; return t; }, TaskContinuationOptions.ExecuteSynchronously).Unwrap();
        try
        {
            await Eventually.WaitFor(() => sink.InProgress == 1); // the early events of the running tool
            pipeline.StopNow();
            await Eventually.WaitFor(() => pipeline.Stats.DeadlineSettles == 1); // the sweep runs once the budget's timers are armed

            time.Stall();
            time.Advance(budget); // every timer of the budget comes due while no thread is free to run it
            time.Resume();
            await Eventually.WaitFor(() => sink.TokenFired);
            var returned = await Task.WhenAny(run, Task.Delay(500)) == run;

            sink.Release(); // its unwind ends
            await Eventually.WaitFor(() => sink.InProgress == 0);
            time.Advance(budget / 5);
            await run.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(returned, "RunAsync returned while the sink still unwound from its token");
            Assert.Equal(0, writesInProgressAtReturn);
        }
        finally
        {
            releaseTool.TrySetResult();
            sink.Release();
        }
    }

    [Fact]
    public async Task A_pipeline_runs_once()
    {
        var pipeline = new CommandPipeline<DeliveryHandle>(InMemoryCommandSource.From([]), PipelineHarness.Tools(), new CollectingSink());
        await pipeline.RunAsync(CancellationToken.None);
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline.RunAsync(CancellationToken.None));
    }

    [Fact]
    public async Task StopNow_before_RunAsync_twice_and_after_it_settles_every_handle_and_returns_at_once()
    {
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 50).Select(i => TestCommands.Make($"c{i}")));
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { SettleTimeout = TimeSpan.FromSeconds(10) };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(), sink, options);

        pipeline.StopNow();
        pipeline.StopNow();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        clock.Stop();
        pipeline.StopNow();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"RunAsync took {clock.Elapsed}");
        Assert.Equal(pipeline.Stats.Pulled, source.Acked + source.Nacked);
        Assert.Equal(0, pipeline.Stats.InFlight);
    }

    [Fact]
    public async Task StopNow_after_a_run_that_ended_on_its_own_changes_nothing()
    {
        var source = InMemoryCommandSource.From(Enumerable.Range(0, 20).Select(i => TestCommands.Make($"c{i}")));
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions());
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        var emitted = pipeline.Stats.EventsEmitted;

        pipeline.StopNow();
        pipeline.StopNow();

        Assert.Equal(20, source.Acked);
        Assert.Equal(emitted, pipeline.Stats.EventsEmitted);
    }

    /// <summary>Every write waits for its token and then, unwinding, for <see cref="Release"/>.</summary>
    private sealed class HeldUnwindSink : IEventSink
    {
        private readonly TaskCompletionSource _unwound = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _inProgress;
        private int _tokenFired;

        public int InProgress => Volatile.Read(ref _inProgress);

        public bool TokenFired => Volatile.Read(ref _tokenFired) == 1;

        public void Release() => _unwound.TrySetResult();

        public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _inProgress);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                Volatile.Write(ref _tokenFired, 1);
                await _unwound.Task.ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
            }
            finally
            {
                Interlocked.Decrement(ref _inProgress);
            }
        }
    }
}
