namespace Pipeline.Tests.Engine;

/// <summary>
/// The hard deadline (ShutdownTimeout after a stop, or StopNow): past it nothing starts, running
/// tools are cancelled and what never started is nacked, and RunAsync returns with every pulled
/// handle counted, however the source, the claimer or the sink behave.
/// </summary>
public sealed class HardDeadlineTests(ITestOutputHelper output)
{
    /// <summary>
    /// With ack after dispatch the commands still queued for a slot at the deadline are nacked and
    /// never dispatched: no tool is invoked with a cancelled token, and no command.claimed /
    /// command.started / command.failed is written for a command that was given back and never ran.
    /// </summary>
    [Fact]
    public async Task Ack_after_dispatch_past_the_deadline_starts_no_queued_command()
    {
        using var stuckRun = StuckRun.Start(AckMode.AckAfterDispatch);
        var (time, stuck, source, sink, pipeline, stop, run) = stuckRun;

        await Eventually.WaitFor(() => stuck.Started == 2 && pipeline.Stats.Pulled == 10);
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
    [Fact(Skip = "Open: ack before dispatch awaits the ack, then starts the tool even when the hard deadline fired meanwhile (acked, never ran: its token is already cancelled); closing it needs the tool started alongside the ack, a design change")]
    public async Task Ack_before_dispatch_a_deadline_during_the_ack_does_not_leave_an_acked_command_unrun()
    {
        var source = new SlowAckSource(TestCommands.Make("c0", "probe"));
        var probe = new TokenProbeTool("probe");
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckBeforeDispatch) with { SettleTimeout = TimeSpan.FromSeconds(5) };
        var pipeline = new CommandPipeline<int>(source, PipelineHarness.Tools(probe), sink, options);
        var run = pipeline.RunAsync(CancellationToken.None);

        await Eventually.WaitFor(() => source.AckCalls == 1);
        pipeline.StopNow();
        await Task.Delay(50);
        source.ReleaseAck();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, source.Acked);
        Assert.Equal(1, probe.Started);
        Assert.Equal(0, probe.StartedCancelled); // an acked command's tool got a real chance to run
    }

    [Fact]
    public async Task A_source_whose_nack_blocks_its_thread_does_not_hold_RunAsync_past_the_deadline()
    {
        using var unblock = new ManualResetEventSlim(false);
        var source = new StubbornSource { BlockNack = unblock };
        var claimer = new ScriptedClaimer { Hang = _ => true };
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            source.Release(TestCommands.Make("a"));
            await Eventually.WaitFor(() => claimer.Calls == 1, ConditionBound, "'a' being claimed (forever)");
            pipeline.RequestStop();
            await Eventually.Returns(run, QuickStopBound, "a nack that blocks its calling thread (a synchronous client call that ignores its token)");
        }
        finally
        {
            unblock.Set();
            claimer.ReleaseHangs();
            source.Release(TestCommands.Make("z")); // lets the pull that ignores its token return
            await run.WaitAsync(QuickStopBound);
        }
    }

    [Fact]
    public async Task When_RunAsync_returns_after_the_deadline_every_pulled_handle_is_counted_as_settled_or_failed()
    {
        // Handle 1 is open at the deadline (its claim never returns); its renewal and its nack never return.
        var source = new StubbornSource { KeepAliveInterval = TimeSpan.FromMilliseconds(20), HangRenewal = _ => true, HangNack = _ => true };
        var claimer = new ScriptedClaimer { Hang = _ => true };
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        long pulled, settledOrFailed;
        string counters;
        try
        {
            source.Release(TestCommands.Make("a"));
            await Eventually.WaitFor(() => claimer.Calls == 1 && source.RenewalsOf(1) == 1, ConditionBound, "'a' claimed and renewed");
            var stopped = Stopwatch.StartNew();
            pipeline.RequestStop();
            await Eventually.Returns(run, QuickStopBound, "hung claim, renewal and nack");
            var stats = pipeline.Stats;
            pulled = stats.Pulled;
            settledOrFailed = stats.Acked + stats.Nacked + stats.Terminated + stats.SettleErrors;
            counters = $"{stopped.ElapsedMilliseconds} ms after the stop: pulled {pulled}, acked {stats.Acked}, nacked {stats.Nacked}, " +
                $"terminated {stats.Terminated}, settle errors {stats.SettleErrors}, deadline settles {stats.DeadlineSettles}";
        }
        finally
        {
            source.ReleaseHangs();
            claimer.ReleaseHangs();
            source.Release(TestCommands.Make("z"));
        }

        output.WriteLine(counters);
        Assert.True(pulled == settledOrFailed,
            $"RunAsync returned with Pulled != Acked + Nacked + Terminated + SettleErrors ({counters}): the deadline's nack waited a settle budget for the renewal, then its call got another, and RunAsync waits only one");
    }

    [Fact]
    public async Task Settles_after_the_shutdown_deadline_reach_a_source_that_honours_its_token()
    {
        var source = new KeepAliveSource { HonourTokens = true };
        for (var i = 0; i < 10; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}", "hang"));
        }

        source.Complete();
        var hang = new GatedTool("hang"); // never released: the deadline cancels it
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(hang), new CollectingSink(), options);

        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => hang.Started == 2, ConditionBound, "both dispatch slots running the hanging tool");
        pipeline.RequestStop();
        await Eventually.Returns(run, StopBound, "a tool hanging past the deadline");

        Assert.Equal(10, source.Pulled);
        var wrong = source.NotSettledExactlyOnce();
        Assert.True(wrong.Count == 0, $"{wrong.Count} handle(s) whose settle did not reach the source exactly once: {string.Join("; ", wrong)}");
    }

    [Theory]
    [InlineData("ack")]
    [InlineData("claimer")]
    public async Task A_callee_that_ignores_its_token_and_never_returns_does_not_hold_RunAsync_past_the_deadline(string hung)
    {
        var source = new KeepAliveSource { HangAck = hung == "ack" ? h => h == 0 : null };
        var claimer = new ScriptedClaimer { Hang = hung == "claimer" ? c => c?.CommandId == "c0" : null };
        for (var i = 0; i < 5; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}"));
        }

        source.Complete();
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(
                () => hung == "ack" ? source.Pulled > 0 && source.SettlesOf(0).Count == 1 : claimer.Calls >= 1,
                ConditionBound,
                $"the {hung} call for c0 began");
            var stopped = Stopwatch.StartNew();
            pipeline.RequestStop();
            await Eventually.Returns(run, StopBound, $"a {hung} call that never returns",
                () => $"pulled {source.Pulled}, unsettled {source.NotSettledExactlyOnce().Count}");
            output.WriteLine($"returned {stopped.ElapsedMilliseconds} ms after the stop");
        }
        finally
        {
            source.ReleaseHangs();
            claimer.ReleaseHangs();
        }

        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
        if (hung == "ack")
        {
            // Its one ack call is still hanging: no second call; every other handle settled once.
            Assert.Equal(SettleResult.Pending, Assert.Single(source.SettlesOf(0)).Result);
            Assert.Empty(source.NotSettledExactlyOnce(except: h => h == 0));
        }
        else
        {
            // The pipeline settles the handle whose claim never came back: a nack, so it is redelivered.
            Assert.Empty(source.NotSettledExactlyOnce());
            Assert.Contains(Assert.Single(source.SettlesOf(0)).Kind, new[] { SettleKind.Nacked, SettleKind.NackedWithDelay });
        }
    }

    /// <summary>
    /// Ack before dispatch acks as the tool starts, not while the command waits for a slot: at the
    /// deadline the two running ones were acked (they are ours, cut off), and the eight that never
    /// started are nacked for redelivery. Acking them at claim lost them: acked, never run.
    /// </summary>
    [Fact]
    public async Task Ack_before_dispatch_at_the_deadline_nacks_the_commands_that_never_started()
    {
        using var stuckRun = StuckRun.Start(AckMode.AckBeforeDispatch);
        var (time, stuck, source, _, pipeline, stop, run) = stuckRun;

        await Eventually.WaitFor(() => stuck.Started == 2 && pipeline.Stats.Pulled == 10);
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
        using var stuckRun = StuckRun.Start(AckMode.AckAfterDispatch);
        var (time, stuck, source, sink, pipeline, stop, run) = stuckRun;

        await Eventually.WaitFor(() => stuck.Started == 2);
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

    /// <summary>
    /// Ten commands of a tool that never returns (it only ends by its token), two dispatch slots,
    /// a 5 s shutdown timeout on a fake clock; <see cref="Stop"/> cancels the run's token.
    /// </summary>
    private sealed record StuckRun(
        FakeTimeProvider Time,
        GatedTool Stuck,
        InMemoryCommandSource Source,
        CollectingSink Sink,
        CommandPipeline<DeliveryHandle> Pipeline,
        CancellationTokenSource Stop,
        Task Run) : IDisposable
    {
        public static StuckRun Start(AckMode mode)
        {
            var time = new FakeTimeProvider();
            var stuck = new GatedTool("stuck");
            var source = InMemoryCommandSource.From(Enumerable.Range(0, 10).Select(i => TestCommands.Make($"c{i}", "stuck")));
            var sink = new CollectingSink();
            var options = PipelineHarness.FastOptions(mode) with
            {
                Dispatch = new BlockOptions { Parallelism = 2 },
                ShutdownTimeout = TimeSpan.FromSeconds(5),
            };
            var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(stuck), sink, options, timeProvider: time);
            var stop = new CancellationTokenSource();
            return new StuckRun(time, stuck, source, sink, pipeline, stop, pipeline.RunAsync(stop.Token));
        }

        public void Dispose() => Stop.Dispose();
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
