using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Tests.Support;
using Xunit.Abstractions;

namespace Pipeline.Tests.Engine;

/// <summary>
/// One test per defect of issue 6: each delivery owns its handle from pull to exactly one settle,
/// on every path. Each test states the behaviour it requires; the expected values come from the
/// scenario, never from the engine.
/// </summary>
public sealed class DeliveryDefectTests(ITestOutputHelper output)
{
    /// <summary>With ShutdownTimeout 200 ms and a settle budget of 500 ms, RunAsync must be back well within this after a stop.</summary>
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan ShortShutdown = TimeSpan.FromMilliseconds(200);

    /// <summary>A run that ends by itself (source exhausted) must end within this.</summary>
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan ConditionBound = TimeSpan.FromSeconds(3);

    // ---- 1. The embedded source loses a command between delayed redeliveries --------------------

    [Fact]
    public async Task A_command_that_always_fails_is_attempted_MaxAttempts_times_then_dead_lettered_once()
    {
        var seed = Seed(20261201);
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
        var random = new Random(seed);
        const int runs = 100;
        for (var run = 0; run < runs; run++)
        {
            var count = random.Next(2, 6);
            var attempts = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
            var failing = new ScriptedTool("fail", (command, _) =>
            {
                attempts.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
                return new ValueTask<ToolResult>(ToolResult.Failure("always fails"));
            });
            var source = InMemoryCommandSource.From(Enumerable.Range(0, count).Select(i => TestCommands.Make($"c{i}", "fail")));
            var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
            {
                MaxAttempts = 3,
                ToolRetries = 0,
                NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(2) },
                PullParallelism = random.Next(1, 5),
                Dispatch = new BlockOptions { Parallelism = random.Next(1, 5) },
                ShutdownTimeout = ShortShutdown,
            };
            var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(failing), NullEventSink.Instance, options);
            var context = $"run {run} (seed {seed}, {count} commands, pull parallelism {options.PullParallelism})";

            await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, context);

            var deadLetters = source.DeadLetters.GroupBy(d => d.Outcome.Command!.CommandId).ToDictionary(g => g.Key, g => g.Count());
            for (var i = 0; i < count; i++)
            {
                var id = $"c{i}";
                Assert.True(
                    attempts.GetValueOrDefault(id) == 3 && deadLetters.GetValueOrDefault(id) == 1,
                    $"{context}: {id} was attempted {attempts.GetValueOrDefault(id)} times (expected 3) and dead-lettered " +
                    $"{deadLetters.GetValueOrDefault(id)} times (expected 1)");
            }
        }
    }

    // ---- 2. A claim that fails without a command leaks its handle and keeps its id -------------

    [Theory]
    [InlineData(ClaimOutcomeKind.RetryLater)]
    [InlineData(ClaimOutcomeKind.Failed)]
    public async Task A_claim_failing_without_a_command_settles_the_handle_and_lets_the_redelivery_run(ClaimOutcomeKind kind)
    {
        var source = new KeepAliveSource();
        var claims = 0;
        var claimer = new ScriptedClaimer((pulled, _) => new ValueTask<ClaimOutcome>(
            Interlocked.Increment(ref claims) > 1 ? pulled
            : kind == ClaimOutcomeKind.RetryLater ? ClaimOutcome.RetryLater("claim store busy")
            : ClaimOutcome.Failed("claim refused")));
        var tool = new TrackingTool("work");
        tool.Release();

        // A failed claim is nacked here (not terminated), so the later delivery is its redelivery.
        var options = PipelineHarness.FastOptions() with { FailedClaimAction = FailedClaimAction.Nack, ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options, claimer);

        source.Enqueue(TestCommands.Make("a", "work"));
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => source.Pulled == 1 && source.SettlesOf(0).Count > 0, ConditionBound,
                $"handle 0, whose claim returned {kind} without a command, settled");

            // The same command delivered again later (its redelivery): it must run.
            source.Enqueue(TestCommands.Make("a", "work", attempts: 1));
            await Eventually.WaitFor(() => source.Pulled == 2 && source.SettlesOf(1).Count > 0, ConditionBound,
                "the later delivery of the same command id settled");
            source.Complete();
            await Eventually.Returns(run, RunBound, "after the source was exhausted");
        }
        finally
        {
            source.Complete();
            pipeline.RequestStop();
        }

        var first = Assert.Single(source.SettlesOf(0));
        Assert.Equal(SettleResult.Accepted, first.Result);
        Assert.Contains(first.Kind, new[] { SettleKind.Nacked, SettleKind.NackedWithDelay });
        Assert.True(tool.InvocationsOf("a") == 1, $"the later delivery of 'a' ran {tool.InvocationsOf("a")} times (expected 1): it was skipped as a duplicate");
        Assert.Equal(SettleKind.Acked, Assert.Single(source.SettlesOf(1)).Kind);
        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
    }

    // ---- 3. A blocked sink holds settles and shutdown -------------------------------------------

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_sink_that_blocks_forever_holds_neither_settles_nor_shutdown(bool sinkHonoursToken)
    {
        var source = new KeepAliveSource();
        for (var i = 0; i < 5_000; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}"));
        }

        source.Complete();
        var sink = new BlockingSink(sinkHonoursToken);
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options);

        var run = pipeline.RunAsync(CancellationToken.None);
        Stopwatch stopped;
        try
        {
            await Eventually.WaitFor(() => sink.Writes >= 1, ConditionBound, "the sink was written to");
            await Task.Delay(100); // not for correctness: lets work back up behind the sink before the stop

            stopped = Stopwatch.StartNew();
            pipeline.RequestStop();
            await Eventually.Returns(run, StopBound, $"a sink that blocks and {(sinkHonoursToken ? "honours" : "ignores")} its token",
                () => $"pulled {source.Pulled}, unsettled {source.NotSettledExactlyOnce().Count}");
        }
        finally
        {
            sink.Release();
        }

        output.WriteLine($"returned {stopped.ElapsedMilliseconds} ms after the stop; pulled {source.Pulled}");
        Assert.Empty(source.NotSettledExactlyOnce());
        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
    }

    // ---- 4. Settles after the deadline are made with an already-cancelled token -----------------

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

    // ---- 5. A callee that ignores its token holds RunAsync forever ------------------------------

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

    // ---- 6. Keep-alive only while the tool runs -------------------------------------------------

    [Fact]
    public async Task Every_handle_is_kept_alive_from_pull_to_settle_including_while_it_waits_in_a_queue()
    {
        var time = new FakeTimeProvider();
        var interval = TimeSpan.FromMilliseconds(20);
        var source = new KeepAliveSource(time) { KeepAliveInterval = interval };
        const int items = 16;
        var waiting = 0;
        for (var i = 0; i < items; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}", "gated"));
        }

        source.Complete();
        var gated = new GatedTool("gated");
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            Dispatch = new BlockOptions { Parallelism = 1 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(gated), new CollectingSink(), options, timeProvider: time);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            // One item running and as many waiting behind it as the pipeline will hold (all 16 today).
            await Eventually.WaitFor(() => gated.Started == 1, ConditionBound, "the first item running");
            await Eventually.Quiet(() => source.Pulled, TimeSpan.FromMilliseconds(100), ConditionBound, "pulls");
            waiting = source.Pulled - 1;

            // 200 ms of source time (ten intervals) in 5 ms steps, while one item runs and the rest wait.
            await Advance(time, TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(5));
        }
        finally
        {
            gated.Release();
        }

        await DriveUntilDone(time, run, "after the gate opened");

        Assert.True(waiting > 0, "the scenario needs at least one item waiting behind the running one");
        var problems = new List<string>();
        for (var handle = 0L; handle < source.Pulled; handle++)
        {
            var settles = source.SettlesOf(handle);
            if (settles.Count == 0)
            {
                problems.Add($"handle {handle}: never settled");
                continue;
            }

            var marks = new List<long> { source.PulledAt(handle) };
            marks.AddRange(source.RenewalsOf(handle).Select(r => r.Start));
            marks.Add(settles[0].At);
            var held = time.GetElapsedTime(marks[0], marks[^1]);
            var longestGap = marks.Zip(marks.Skip(1), (a, b) => time.GetElapsedTime(a, b)).Max();
            if (longestGap > 3 * interval)
            {
                problems.Add($"handle {handle}: held {held.TotalMilliseconds:0} ms, {marks.Count - 2} renewals, longest gap {longestGap.TotalMilliseconds:0} ms");
            }
        }

        Assert.True(problems.Count == 0, $"handles that went more than 3 keep-alive intervals ({3 * interval.TotalMilliseconds:0} ms) without a renewal while held:\n{string.Join("\n", problems)}");
    }

    // ---- 7. Renewals are async void: concurrent, and outliving the settle -----------------------

    [Fact]
    public async Task Renewals_of_a_handle_run_one_at_a_time_and_never_overlap_or_follow_its_settle()
    {
        var time = new FakeTimeProvider();
        var source = new KeepAliveSource(time)
        {
            KeepAliveInterval = TimeSpan.FromMilliseconds(20),
            RenewalDuration = TimeSpan.FromMilliseconds(50), // slower than the interval; honours its token
            HonourTokens = true,
        };
        source.Enqueue(TestCommands.Make("a", "gated"));
        source.Enqueue(TestCommands.Make("b", "gated"));
        source.Complete();
        var gated = new GatedTool("gated");
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(gated), new CollectingSink(), options, timeProvider: time);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => gated.Started == 2, ConditionBound, "both items running");
            await Advance(time, TimeSpan.FromMilliseconds(110), TimeSpan.FromMilliseconds(5));
        }
        finally
        {
            gated.Release(); // settles while renewals are due or running
        }

        await DriveUntilDone(time, run, "after the gate opened");

        // A few more intervals: a renewal timer left armed past the settle would fire now.
        await Advance(time, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(5));

        Assert.True(source.RenewalsOf(0).Count > 0 && source.RenewalsOf(1).Count > 0, "the scenario should renew both handles");
        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
    }

    // ---- 8. After dispatch, a duplicate of a running command is acked --------------------------

    [Fact]
    public async Task After_dispatch_a_duplicate_of_a_running_command_is_held_not_acked_and_a_failed_original_runs_again()
    {
        var source = new KeepAliveSource { RedeliverOnNack = true }; // acks by message, like JetStream
        var tool = new TrackingTool("flaky", (_, nth) => nth == 1 ? ToolResult.Failure("the first run fails") : ToolResult.Success());
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxAttempts = 10,
            ToolRetries = 0,
            NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(5), Max = TimeSpan.FromMilliseconds(20) },
            Dispatch = new BlockOptions { Parallelism = 4 },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);

        source.Enqueue(TestCommands.Make("a", "flaky"));
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => tool.Started == 1, ConditionBound, "the original running");
            source.Enqueue(TestCommands.Make("a", "flaky")); // a duplicate delivery of the same message
            await Eventually.WaitFor(() => source.Pulled >= 2, ConditionBound, "the duplicate pulled");
            await Task.Delay(200);

            // Held, open, until the original settles: not acked (that would lose the message if the
            // original fails) and not nacked round and round (each redelivery would use an attempt).
            Assert.True(
                source.SettlesOf(1).Count == 0 && tool.Started == 1,
                $"the duplicate was {string.Join(", ", source.SettlesOf(1).Select(c => c.Kind))} while the original was still running (tool invocations {tool.Started}); expected it held");
        }
        finally
        {
            tool.Release(); // the original now fails
            source.Complete();
        }

        await Eventually.Returns(run, RunBound, "after the original failed", () => $"pulled {source.Pulled}, invocations {tool.Started}");

        Assert.True(tool.InvocationsOf("a") == 2, $"'a' ran {tool.InvocationsOf("a")} times: after its failure it must be redelivered and run again");
        Assert.Equal(1, pipeline.Stats.Completed);
        Assert.Empty(tool.Violations);
        Assert.True(source.Violations.Count == 0, source.ViolationSummary());
    }

    // ---- 9. Ids of running commands are evicted from the recent-id cache ------------------------

    [Fact]
    public async Task The_id_of_a_running_command_is_never_evicted_so_its_duplicate_never_runs_alongside_it()
    {
        var source = new KeepAliveSource { RedeliverOnNack = true };
        var tool = new TrackingTool("work");
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            RecentCommandIds = 2,
            Dispatch = new BlockOptions { Parallelism = 8 },
            NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(5), Max = TimeSpan.FromMilliseconds(20) },
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options);

        for (var i = 0; i < 5; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}", "work"));
        }

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => tool.Started == 5, ConditionBound, "five distinct commands running");
            source.Enqueue(TestCommands.Make("c0", "work")); // a duplicate of the first, still running
            await Eventually.WaitFor(() => source.Pulled >= 6, ConditionBound, "the duplicate pulled");
            await Task.Delay(200); // time for a duplicate that was wrongly let through to start
        }
        finally
        {
            tool.Release();
            source.Complete();
        }

        await Eventually.Returns(run, RunBound, "after the tools were released");

        Assert.True(tool.Violations.Count == 0, $"a duplicate ran alongside its original: {string.Join("; ", tool.Violations)}");
        Assert.Empty(source.NotSettledExactlyOnce());
    }

    // ---- 10. default(ClaimOutcome) --------------------------------------------------------------

    [Theory]
    [InlineData("source")]
    [InlineData("claimer")]
    public async Task A_default_claim_outcome_is_a_failed_claim_whose_handle_is_settled_once(string from)
    {
        var source = new KeepAliveSource();
        source.Enqueue(from == "source" ? default : ClaimOutcome.Claimed(TestCommands.Make("a")));
        source.Complete();
        var claimer = new ScriptedClaimer((_, _) => new ValueTask<ClaimOutcome>(default(ClaimOutcome)));
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options, from == "claimer" ? claimer : null);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, $"default(ClaimOutcome) from the {from}");

        var wrong = source.NotSettledExactlyOnce();
        Assert.True(wrong.Count == 0, $"default(ClaimOutcome) from the {from}: {string.Join("; ", wrong)}");
        var settle = Assert.Single(source.SettlesOf(0));
        Assert.True(
            settle.Kind is SettleKind.Terminated or SettleKind.Nacked or SettleKind.NackedWithDelay,
            $"default(ClaimOutcome) from the {from} was {settle.Kind}: a claim with no command is a failed claim (terminate or nack)");
        Assert.Contains(sink.Events, e => e.EventType == EventTypes.ClaimFailed);
        Assert.Equal(0, pipeline.Stats.InternalErrors);
    }

    // ---- 11. A keep-alive interval <= 0 ---------------------------------------------------------

    [Theory]
    [InlineData(0)]
    [InlineData(-1000)]
    public void A_keep_alive_interval_that_is_not_positive_is_refused_when_the_pipeline_is_built(int milliseconds)
    {
        var source = new KeepAliveSource { KeepAliveInterval = TimeSpan.FromMilliseconds(milliseconds) };

        var error = Assert.ThrowsAny<ArgumentException>(() =>
            new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions()));
        Assert.Contains("KeepAliveInterval", error.Message, StringComparison.Ordinal);
    }

    // ---- 12. A terminated command's id is forgotten ---------------------------------------------

    [Fact]
    public async Task A_terminated_command_is_remembered_so_a_later_duplicate_is_skipped_not_run_again()
    {
        var source = new KeepAliveSource();
        var tool = new TrackingTool("fail", (_, _) => ToolResult.Failure("always fails"));
        tool.Release();
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            MaxAttempts = 1,
            ToolRetries = 0,
            ShutdownTimeout = ShortShutdown,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), sink, options);

        source.Enqueue(TestCommands.Make("a", "fail"));
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => source.Pulled == 1 && source.SettlesOf(0).Count > 0, ConditionBound, "the first delivery settled");
            Assert.Equal(SettleKind.Terminated, source.SettlesOf(0)[0].Kind); // the scenario: it was given up on

            source.Enqueue(TestCommands.Make("a", "fail")); // a later duplicate delivery
            await Eventually.WaitFor(() => source.Pulled == 2 && source.SettlesOf(1).Count > 0, ConditionBound, "the duplicate settled");
        }
        finally
        {
            source.Complete();
        }

        await Eventually.Returns(run, RunBound, "after the source was exhausted");

        Assert.True(tool.InvocationsOf("a") == 1, $"'a' ran {tool.InvocationsOf("a")} times: the duplicate of a terminated command ran again");
        Assert.Equal(SettleKind.Acked, Assert.Single(source.SettlesOf(1)).Kind);
        Assert.Contains(EventTypes.CommandSkipped, sink.TypesFor("a"));
    }

    // ---- 13. Settle counters --------------------------------------------------------------------

    [Fact]
    public async Task Settle_counters_count_settles_the_source_accepted_and_settle_calls_that_failed_separately()
    {
        var source = new KeepAliveSource { FailAck = h => h % 2 == 1 };
        for (var i = 0; i < 10; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}"));
        }

        source.Complete();
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, "ten noop commands");

        var stats = pipeline.Stats;
        Assert.Equal(5, source.AcceptedAcks); // the scenario: odd handles' acks throw
        Assert.Equal(5, source.FailedSettleCalls);
        Assert.Equal(10, stats.Pulled);
        Assert.True(stats.Acked == source.AcceptedAcks, $"Stats.Acked is {stats.Acked}, but the source accepted {source.AcceptedAcks} acks");
        Assert.Equal(source.FailedSettleCalls, stats.SettleErrors);
        Assert.Equal(stats.Pulled, stats.Acked + stats.Nacked + stats.Terminated + stats.SettleErrors);
    }

    // ---- 14. A second settle is never a second call ---------------------------------------------

    [Fact]
    public async Task A_claimer_that_always_throws_gets_every_handle_settled_exactly_once()
    {
        var source = new KeepAliveSource();
        for (var i = 0; i < 20; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}"));
        }

        source.Complete();
        var claimer = new ScriptedClaimer((_, _) => throw new InvalidOperationException("claim store down"));
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, "a claimer that always throws");

        Assert.Equal(20, source.Pulled);
        Assert.True(source.Violations.Count == 0, source.ViolationSummary()); // a second settle call of any handle shows here
        Assert.Empty(source.NotSettledExactlyOnce());
        Assert.All(Enumerable.Range(0, 20), h => Assert.Contains(source.SettlesOf(h)[0].Kind, new[] { SettleKind.Nacked, SettleKind.NackedWithDelay }));
        Assert.Equal(20, pipeline.Stats.ClaimRetries);
        Assert.Equal(0, pipeline.Stats.InternalErrors);
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static int Seed(int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), out var seed) ? seed : fallback;

    /// <summary>Moves the fake clock by <paramref name="total"/> in <paramref name="step"/>s, letting real threads catch up between steps.</summary>
    private static async Task Advance(FakeTimeProvider time, TimeSpan total, TimeSpan step)
    {
        for (var moved = TimeSpan.Zero; moved < total; moved += step)
        {
            time.Advance(step);
            await Task.Delay(1);
        }
    }

    /// <summary>Keeps the fake clock moving (1 ms per step) until <paramref name="run"/> returns, for at most <see cref="RunBound"/> of real time.</summary>
    private static async Task DriveUntilDone(FakeTimeProvider time, Task run, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!run.IsCompleted && clock.Elapsed < RunBound)
        {
            time.Advance(TimeSpan.FromMilliseconds(1));
            await Task.Delay(1);
        }

        await Eventually.Returns(run, TimeSpan.FromMilliseconds(100), what);
    }
}
