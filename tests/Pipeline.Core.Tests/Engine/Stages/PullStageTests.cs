using System.Collections.Concurrent;
using System.Diagnostics;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Engine.Stages;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Tests.Support;
using Xunit.Abstractions;

namespace Pipeline.Tests.Engine;

/// <summary>
/// Review of the Dataflow engine (issue 6): one test per path found to break an invariant, each
/// failing on the engine as reviewed, plus a few guards (StageBlock, parked pull loops, a
/// command's event order) that pass and keep passing only while those invariants hold. Each test
/// states the behaviour it requires; the expected values come from the scenario, never from the
/// engine. Seeded tests print their seed; PIPELINE_TEST_SEED replays one.
/// </summary>
public sealed class ReviewFindingsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ShortShutdown = TimeSpan.FromMilliseconds(200);

    private static readonly TimeSpan ConditionBound = TimeSpan.FromSeconds(3);

    /// <summary>ShutdownTimeout 200 ms + SettleTimeout 500 ms (FastOptions) + a generous margin.</summary>
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(2);

    // ---- 1. A stop while a pull waits on its token ------------------------------------------------

    [Fact]
    public async Task A_stop_while_a_pull_waits_on_its_token_does_not_spin_pulls_on_the_stopping_thread()
    {
        var source = new WaitingSource();
        var options = PipelineHarness.FastOptions() with { PullParallelism = 1, ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options);
        source.Enqueue(TestCommands.Make("a"));

        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => source.Pulled == 1 && source.Settles.Count == 1 && source.Waiting == 1, ConditionBound,
            "'a' settled and the pull loop waiting for the next item");

        var stopping = Stopwatch.StartNew();
        var stopThread = 0;
        var stop = Task.Run(() =>
        {
            stopThread = Environment.CurrentManagedThreadId;
            pipeline.RequestStop();
        });
        await Eventually.Returns(stop, StopBound, "RequestStop");
        var took = stopping.ElapsedMilliseconds;
        await Eventually.Returns(run, StopBound, "after the stop");
        var where = source.LastCancelledCallThread == stopThread ? "on the thread that called RequestStop" : "on another thread";
        output.WriteLine($"RequestStop returned after {took} ms; NextAsync calls with a cancelled token: {source.CancelledCalls}, the last {where}");

        // A loop may make one call with the cancelled token before it sees the stop; the source's
        // escape hatch ends a spin after 10,000 calls (without it RequestStop never returns).
        Assert.True(source.CancelledCalls <= 10,
            $"after the stop NextAsync was called {source.CancelledCalls} times with an already-cancelled token, the last {where}: " +
            "the pull loop ran inline in the token's cancellation and spun before RequestStop could close the Pull block");
    }

    // ---- 2. Emit with parallelism 2: the batch pool runs dry --------------------------------------

    [Fact]
    public async Task With_two_Emit_workers_every_event_reaches_a_healthy_sink_once_and_no_delivery_leaks()
    {
        // Emit keeps one batch per worker, but a worker that goes quiet also takes the idle batches to
        // flush them; a second worker starting meanwhile finds no batch. Noop commands through a sink
        // whose writes sometimes wait, a few rounds: each round must end by itself with 3 events per command.
        var seed = Seed(20261210);
        const int commands = 1_000;
        for (var round = 0; round < 10; round++)
        {
            var roundSeed = seed + round;
            output.WriteLine($"round {round}: seed {roundSeed} (replay with PIPELINE_TEST_SEED={roundSeed})");
            var source = InMemoryCommandSource.From(Enumerable.Range(0, commands).Select(i => TestCommands.Make($"c{i}")));
            var sink = new JitterSink(roundSeed);
            var options = PipelineHarness.FastOptions() with
            {
                Emit = new BlockOptions { Parallelism = 2 },
                MaxInFlight = 16,
                ShutdownTimeout = ShortShutdown,
            };
            var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(), sink, options);
            var run = pipeline.RunAsync(CancellationToken.None);
            var clock = Stopwatch.StartNew();
            while (!run.IsCompleted && pipeline.Stats.InternalErrors == 0 && clock.Elapsed < TimeSpan.FromSeconds(3))
            {
                await Task.Delay(5);
            }

            var stats = pipeline.Stats;
            var returned = run.IsCompleted;
            var state = $"round {round} (seed {roundSeed}): pulled {stats.Pulled} of {commands}, internal errors {stats.InternalErrors}, " +
                $"free in-flight slots {stats.Blocks.Pull.Queued} of {options.MaxInFlight}, returned by itself {returned}";
            if (!returned)
            {
                pipeline.RequestStop(); // cleanup: the deadline lets a stalled run go
                await run.WaitAsync(StopBound);
            }

            Assert.True(stats.InternalErrors == 0, state);
            Assert.True(returned && run.IsCompletedSuccessfully, state);
            var perCommand = sink.Events.GroupBy(e => e.CommandId!).ToDictionary(g => g.Key, g => g.Count());
            var wrong = Enumerable.Range(0, commands).Select(i => $"c{i}").Where(id => perCommand.GetValueOrDefault(id) != 3).ToList();
            Assert.True(wrong.Count == 0, $"{state}: {wrong.Count} commands did not get exactly 3 events, e.g. " +
                string.Join(", ", wrong.Take(5).Select(id => $"{id}: {perCommand.GetValueOrDefault(id)}")));
        }
    }

    // ---- 3. Keep-alive: a settle waits for a renewal it never cancels --------------------------

    [Fact]
    public async Task At_the_deadline_a_settle_that_waited_for_a_renewal_is_not_made_with_an_already_cancelled_token()
    {
        // Renewals take long and honour their token; the claim never returns, so the deadline settles the handle.
        var source = new KeepAliveSource { KeepAliveInterval = TimeSpan.FromMilliseconds(20), RenewalDuration = TimeSpan.FromHours(1), HonourTokens = true };
        source.Enqueue(TestCommands.Make("a"));
        source.Complete();
        var claimer = new ScriptedClaimer { Hang = _ => true };
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => source.Pulled == 1 && source.RenewalsOf(0).Count == 1 && claimer.Calls == 1, ConditionBound,
                "'a' claimed (forever) and its first renewal running");
            pipeline.RequestStop();
            await Eventually.Returns(run, StopBound, "a claim that never returns");
            await Eventually.WaitFor(() => source.SettlesOf(0).Count > 0, ConditionBound, "handle 0 settled");
        }
        finally
        {
            claimer.ReleaseHangs();
        }

        var settle = Assert.Single(source.SettlesOf(0));
        Assert.True(settle.Result == SettleResult.Accepted,
            $"handle 0's {settle.Kind} was {settle.Result}: the settle waited for the renewal, which ended only when the settle budget's token fired, and then got that cancelled token");
    }

    [Fact]
    public async Task A_slow_renewal_is_stopped_by_the_settle_not_left_running_under_it()
    {
        // A renewal that takes longer than the tool (it honours its token). Ack after dispatch: the handle is held through the tool.
        var source = new KeepAliveSource { KeepAliveInterval = TimeSpan.FromMilliseconds(20), RenewalDuration = TimeSpan.FromSeconds(3) };
        source.Enqueue(TestCommands.Make("a", "slow"));
        source.Complete();
        var slow = new ScriptedTool("slow", async (_, _) =>
        {
            await Eventually.WaitFor(() => source.RenewalsOf(0).Count == 1, ConditionBound, "a renewal of handle 0 began");
            return ToolResult.Success();
        });
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(slow), new CollectingSink(), options);

        var clock = Stopwatch.StartNew();
        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(5), "one slow command");
        output.WriteLine($"run took {clock.ElapsedMilliseconds} ms");

        Assert.Equal(SettleResult.Accepted, Assert.Single(source.SettlesOf(0)).Result);
        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
    }

    [Fact]
    public async Task A_renewal_that_outlives_its_handle_does_not_stop_the_next_handle_in_its_slot_from_being_renewed()
    {
        // One delivery slot, so both items use the same keep-alive. Every renewal takes an hour (honouring its token).
        var source = new KeepAliveSource { KeepAliveInterval = TimeSpan.FromMilliseconds(20), RenewalDuration = TimeSpan.FromHours(1) };
        source.Enqueue(TestCommands.Make("a", "slow"));
        source.Enqueue(TestCommands.Make("b", "slow"));
        source.Complete();
        var slow = new ScriptedTool("slow", async (command, _) =>
        {
            // 'a' (handle 0) runs until its first renewal began; 'b' (handle 1) runs 300 ms, 15 keep-alive intervals.
            if (command.CommandId == "a")
            {
                await Eventually.WaitFor(() => source.RenewalsOf(0).Count == 1, ConditionBound, "a renewal of handle 0 began");
            }
            else
            {
                await Task.Delay(300);
            }

            return ToolResult.Success();
        });
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { PullParallelism = 1, MaxInFlight = 1, ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(slow), new CollectingSink(), options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(5), "two slow commands");

        Assert.Equal(2, source.Pulled);
        var held = Stopwatch.GetElapsedTime(source.PulledAt(1), source.SettlesOf(1)[0].At); // the source stamps with the system clock
        Assert.True(source.RenewalsOf(1).Count >= 1,
            $"handle 1 was held {held.TotalMilliseconds:0} ms at a 20 ms keep-alive interval and never renewed: its slot's timer skipped every tick while handle 0's renewal still ran");
    }

    [Fact]
    public async Task A_delivery_stranded_after_the_deadline_is_settled_by_its_own_handle_even_when_its_settle_waits_for_a_renewal()
    {
        // One slot. Handle 1's renewal never returns (a stalled network call), so its ack waits the settle budget.
        // The next pull ignores the stop and returns handle 2 after the deadline: the Pull block strands it.
        var source = new StubbornSource { KeepAliveInterval = TimeSpan.FromMilliseconds(20), HangRenewal = h => h == 1 };
        var claimer = new ScriptedClaimer(async (pulled, _) =>
        {
            await Eventually.WaitFor(() => source.RenewalsOf(1) == 1, ConditionBound, "a renewal of handle 1 began");
            return pulled;
        });
        var options = PipelineHarness.FastOptions() with { PullParallelism = 1, MaxInFlight = 1, ShutdownTimeout = TimeSpan.FromMilliseconds(100) };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            source.Release(TestCommands.Make("a"));
            await Eventually.WaitFor(() => source.SettlesOf(1).Count == 1 && pipeline.Stats.Blocks.Pull.Running == 1, ConditionBound,
                "handle 1 acked and its slot back in a pull");
            pipeline.RequestStop();
            await Eventually.Returns(run, StopBound, "a pull that ignores the stop");

            source.Release(TestCommands.Make("b")); // handle 2, after the deadline
            await Eventually.WaitFor(() => source.SettlesOf(2).Count + source.SettlesOf(0).Count > 0, ConditionBound, "a settle for handle 2");
        }
        finally
        {
            source.ReleaseHangs();
        }

        output.WriteLine($"renewals of 1: {source.RenewalsOf(1)}, of 2: {source.RenewalsOf(2)}; settles of 1: {string.Join(",", source.SettlesOf(1))}; deadline settles {pipeline.Stats.DeadlineSettles}, pulled {pipeline.Stats.Pulled}");
        Assert.True(source.SettlesOf(0).Count == 0,
            $"a settle of handle 0, which was never handed out ({string.Join(", ", source.SettlesOf(0))}): the stranded delivery was released before its settle read its handle");
        Assert.Equal(["nack"], source.SettlesOf(2));
    }

    // ---- 4. The hard deadline ------------------------------------------------------------------

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
            await Eventually.Returns(run, StopBound, "a nack that blocks its calling thread (a synchronous client call that ignores its token)");
        }
        finally
        {
            unblock.Set();
            claimer.ReleaseHangs();
            source.Release(TestCommands.Make("z")); // lets the pull that ignores its token return
            await run.WaitAsync(StopBound);
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
            await Eventually.Returns(run, StopBound, "hung claim, renewal and nack");
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

    // ---- 5. The recent-id cache ----------------------------------------------------------------

    [Fact]
    public async Task A_command_claimed_by_another_worker_is_not_remembered_as_run_here_so_its_later_delivery_runs()
    {
        var source = new KeepAliveSource();
        var claims = 0;
        var claimer = new ScriptedClaimer((pulled, _) => new ValueTask<ClaimOutcome>(
            Interlocked.Increment(ref claims) == 1 ? ClaimOutcome.AlreadyClaimed(pulled.Command) : pulled));
        var tool = new TrackingTool("work");
        tool.Release();
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), sink, options, claimer);

        source.Enqueue(TestCommands.Make("a", "work"));
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => source.Pulled == 1 && source.SettlesOf(0).Count > 0, ConditionBound, "the first delivery (claimed elsewhere) settled");

            // The other worker gave it up; the control plane hands it to this worker.
            source.Enqueue(TestCommands.Make("a", "work", attempts: 1));
            await Eventually.WaitFor(() => source.Pulled == 2 && source.SettlesOf(1).Count > 0, ConditionBound, "the later delivery settled");
        }
        finally
        {
            source.Complete();
        }

        await Eventually.Returns(run, StopBound, "after the source was exhausted");
        Assert.True(tool.InvocationsOf("a") == 1,
            $"'a' ran {tool.InvocationsOf("a")} times here (expected 1): its id was cached when another worker held it, so this worker's own delivery was skipped ({string.Join(", ", sink.TypesFor("a"))})");
    }

    [Fact]
    public async Task A_duplicate_waiting_out_its_running_original_does_not_use_up_the_commands_attempts()
    {
        // The embedded source, ack after dispatch, 3 attempts. 'c' is delivered twice (two separate
        // items); its tool fails every time, the first run after 200 ms. The copy is a duplicate of
        // a running command: it is held until the original settles, never nacked round and round
        // with attempts + 1 each time, so no run is ever past its attempts.
        var invocations = 0;
        var failing = new ScriptedTool("fail", async (_, _) =>
        {
            if (Interlocked.Increment(ref invocations) == 1)
            {
                await Task.Delay(200);
            }

            return ToolResult.Failure("always fails");
        });
        var source = InMemoryCommandSource.From([TestCommands.Make("c", "fail"), TestCommands.Make("c", "fail")]);
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxAttempts = 3,
            ToolRetries = 0,
            PullParallelism = 1,
            NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(20), Max = TimeSpan.FromMilliseconds(20) },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(failing), sink, options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(5), "one failing command delivered twice");

        var failures = sink.For("c").Where(e => e.EventType == EventTypes.CommandFailed).Select(e => e.Error).ToList();
        output.WriteLine($"duplicate nacks while the original ran: {pipeline.Stats.ClaimRetries}; failures: {string.Join(" | ", failures)}");
        Assert.Equal(0, pipeline.Stats.ClaimRetries);
        Assert.DoesNotContain(failures, f => f!.Contains("attempt 4 ", StringComparison.Ordinal) || System.Text.RegularExpressions.Regex.IsMatch(f, @"attempt \d{2,} of"));
        Assert.True(source.DeadLetters.Count >= 1, $"'c' was never given up on: {string.Join(" | ", failures)}");
        Assert.Equal(0, pipeline.Stats.InFlight);
    }

    // ---- 6. Block parallelism ---------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task StageBlock_runs_at_most_parallelism_items_starts_them_in_order_and_completes_after_the_last(int parallelism)
    {
        var seed = Seed(20261211);
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
        const int items = 200_000;
        var random = new Random(seed);
        var modes = Enumerable.Range(0, items).Select(_ => random.Next(4)).ToArray(); // 0, 1: synchronous; 2: yields; 3: short sleep off-thread
        var started = new int[items];
        var order = 0;
        var inProgress = 0;
        var maxInProgress = 0;
        var done = 0;
        var outOfOrder = new ConcurrentQueue<string>();

        void Begin(int item)
        {
            started[item] = Interlocked.Increment(ref order);
            var now = Interlocked.Increment(ref inProgress);
            int seen;
            while (now > (seen = Volatile.Read(ref maxInProgress)) && Interlocked.CompareExchange(ref maxInProgress, now, seen) != seen)
            {
            }
        }

        void End()
        {
            Interlocked.Decrement(ref inProgress);
            Interlocked.Increment(ref done);
        }

        async ValueTask Slow(int mode)
        {
            if (mode == 2)
            {
                await Task.Yield();
            }
            else
            {
                await Task.Run(() => Thread.SpinWait(50));
            }

            End();
        }

        var block = new StageBlock<int>(item =>
        {
            Begin(item);
            if (modes[item] < 2)
            {
                End();
                return ValueTask.CompletedTask;
            }

            return Slow(modes[item]);
        }, parallelism);

        for (var i = 0; i < items; i++)
        {
            Assert.True(block.Post(i));
        }

        block.Complete();
        await block.Completion.WaitAsync(TimeSpan.FromSeconds(8));
        var doneAtCompletion = Volatile.Read(ref done);

        Assert.Equal(items, doneAtCompletion);
        Assert.True(maxInProgress <= parallelism, $"{maxInProgress} items in progress at once (parallelism {parallelism})");
        if (parallelism == 1)
        {
            // With one slot, items start in the order they were posted (Emit relies on this for a command's events).
            var firstInversion = Enumerable.Range(1, items - 1).FirstOrDefault(i => started[i] < started[i - 1]);
            Assert.True(firstInversion == 0, $"item {firstInversion} started before item {firstInversion - 1}");
        }
    }

    [Theory]
    [InlineData(32, 2, 20261213)]
    [InlineData(64, 5, 20261214)]
    [InlineData(17, 3, 20261215)]
    public async Task Pull_loops_parked_for_a_free_slot_are_always_woken(int maxInFlight, int pullParallelism, int fallbackSeed)
    {
        // Guard: a lost wake-up of a parked pull loop would strand the run before the source is exhausted.
        var seed = Seed(fallbackSeed);
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed}), MaxInFlight {maxInFlight}, PullParallelism {pullParallelism}");
        const int commands = 20_000;
        var random = new Random(seed);
        var kinds = Enumerable.Range(0, commands).Select(_ => random.Next(3) switch { 0 => "noop", 1 => "yield", _ => "delay" }).ToArray();
        var source = InMemoryCommandSource.From(Enumerable.Range(0, commands).Select(i => TestCommands.Make($"c{i}", kinds[i])));
        var yielding = new ScriptedTool("yield", async (_, _) =>
        {
            await Task.Yield();
            return ToolResult.Success();
        });
        var delaying = new ScriptedTool("delay", async (command, ct) =>
        {
            if (command.CommandId.EndsWith('7'))
            {
                await Task.Delay(1, ct);
            }

            return ToolResult.Success();
        });
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxInFlight = maxInFlight,
            PullParallelism = pullParallelism,
            Dispatch = new BlockOptions { Parallelism = 8 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(yielding, delaying), NullEventSink.Instance, options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(8), $"{commands} commands",
            () => $"pulled {pipeline.Stats.Pulled}, free slots {pipeline.Stats.Blocks.Pull.Queued}, pulls running {pipeline.Stats.Blocks.Pull.Running}");

        Assert.Equal(commands, pipeline.Stats.Pulled);
        Assert.Equal(commands, source.Acked);
    }

    [Fact]
    public async Task With_one_Emit_worker_each_commands_events_reach_the_sink_in_order()
    {
        var seed = Seed(20261212);
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
        const int commands = 20_000;
        var source = InMemoryCommandSource.From(Enumerable.Range(0, commands).Select(i => TestCommands.Make($"c{i}", i % 2 == 0 ? "yield" : "noop")));
        var yielding = new ScriptedTool("yield", async (_, _) =>
        {
            await Task.Yield();
            return ToolResult.Success();
        });
        var sink = new JitterSink(seed);
        var options = PipelineHarness.FastOptions() with { MaxInFlight = 64, Dispatch = new BlockOptions { Parallelism = 8 }, ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(yielding), sink, options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), TimeSpan.FromSeconds(8), $"{commands} commands");

        var expected = new[] { EventTypes.CommandClaimed, EventTypes.CommandStarted, EventTypes.CommandCompleted };
        var wrong = sink.Events.GroupBy(e => e.CommandId!)
            .Where(g => !g.Select(e => e.EventType).SequenceEqual(expected))
            .Select(g => $"{g.Key}: {string.Join(" > ", g.Select(e => e.EventType))}")
            .ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} commands' events out of order or missing, e.g. {string.Join("; ", wrong.Take(3))}");
        Assert.Equal(commands * 3, sink.Events.Count);
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static int Seed(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), out var seed) ? seed : fallback;
}
