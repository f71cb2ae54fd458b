using Pipeline.Claiming;

namespace Pipeline.Tests.Engine.Stages;

/// <summary>
/// The Claim block: when a command id counts as held (the recent-id cache), what becomes of the
/// duplicates it holds, and how a claim that fails, throws or returns no command settles its handle once.
/// </summary>
public sealed class ClaimStageTests(ITestOutputHelper output)
{
    /// <summary>
    /// Two deliveries of one message (as JetStream redelivers it): the first's claim is answered
    /// "retry later" only after the redelivery was pulled. The id must not be taken for a running
    /// command meanwhile, or the redelivery is acked as a duplicate and the command never runs
    /// (it did, in 20 of 20 runs, when the id was recorded before the claim).
    /// </summary>
    [Theory]
    [InlineData(AckMode.AckBeforeDispatch)]
    [InlineData(AckMode.AckAfterDispatch)]
    public async Task A_redelivery_pulled_while_the_first_claim_answers_retry_later_runs_the_command(AckMode mode)
    {
        for (var run = 0; run < 20; run++)
        {
            var command = TestCommands.Make("c1", "counted");
            var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
            var calls = 0;
            var claimer = new ScriptedClaimer(async (pulled, _) =>
            {
                if (Interlocked.Increment(ref calls) == 1)
                {
                    await Eventually.WaitFor(() => source.Pulled == 2, TimeSpan.FromSeconds(20), "the redelivery pulled");
                    await Task.Delay(50);
                    return ClaimOutcome.RetryLater("the control plane said 503", pulled.Command);
                }

                return pulled;
            });
            var runs = 0;
            var tool = new ScriptedTool("counted", (_, _) =>
            {
                Interlocked.Increment(ref runs);
                return ValueTask.FromResult(ToolResult.Success());
            });
            var options = PipelineHarness.FastOptions(mode) with { Claim = new BlockOptions { Parallelism = 2 } };
            var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), new CollectingSink(), options, claimer);

            await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(1, runs);
            Assert.Equal(1, pipeline.Stats.Completed);
            Assert.Equal(0, pipeline.Stats.Skipped);
            // Either delivery may be the one whose claim is asked first (claims run two at a time):
            // that one is nacked, the other runs and is acked.
            Assert.Equal([SettleKind.Acked, SettleKind.Nacked], source.Settled.Values.Order());
        }
    }

    /// <summary>
    /// Two deliveries of c1 (tool <c>tracked</c>): the second is held behind the first, which the
    /// test's <paramref name="tool"/> then ends; returns once the run has returned.
    /// </summary>
    private static async Task<(RecordingSource Source, CommandPipeline<long> Pipeline)> RunWithAHeldDuplicateAsync(TrackingTool tool, PipelineOptions options, CollectingSink sink)
    {
        var command = TestCommands.Make("c1", "tracked");
        var source = new RecordingSource([ClaimOutcome.Claimed(command), ClaimOutcome.Claimed(command)]);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(tool), sink, options);
        var run = pipeline.RunAsync(CancellationToken.None);
        await Eventually.WaitFor(() => tool.Started == 1 && source.Pulled == 2 && pipeline.Stats.Blocks.Claim.Queued == 1, TimeSpan.FromSeconds(20), "the duplicate held behind its running original");
        tool.Release();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        return (source, pipeline);
    }

    /// <summary>
    /// With ack after dispatch a duplicate of a running command waits behind it. When the source
    /// runs out meanwhile and the original fails, the duplicate is claimed again and runs: it is
    /// not nacked as "still open at the end of the run" nor counted as a deadline settle.
    /// </summary>
    [Fact]
    public async Task A_duplicate_held_when_the_source_runs_out_runs_after_its_original_fails()
    {
        var tool = new TrackingTool("tracked", (_, nth) => nth == 1 ? ToolResult.Failure("boom", transient: true) : ToolResult.Success());
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ToolRetries = 0 };

        var (source, pipeline) = await RunWithAHeldDuplicateAsync(tool, options, new CollectingSink());

        Assert.Equal(2, tool.InvocationsOf("c1"));
        Assert.Empty(tool.Violations);
        Assert.Equal(1, pipeline.Stats.Retried);
        Assert.Equal(1, pipeline.Stats.Completed);
        Assert.Equal(0, pipeline.Stats.DeadlineSettles);
        // The original (whichever delivery was claimed first) nacked, the duplicate run and acked.
        Assert.Equal([SettleKind.Acked, SettleKind.Nacked], source.Settled.Values.Order());
    }

    /// <summary>As above with an original that succeeds: the held duplicate is acked and counted as skipped, nothing else.</summary>
    [Fact]
    public async Task A_duplicate_held_when_the_source_runs_out_is_skipped_after_its_original_succeeds()
    {
        var tool = new TrackingTool("tracked");
        var sink = new CollectingSink();

        var (source, pipeline) = await RunWithAHeldDuplicateAsync(tool, PipelineHarness.FastOptions(AckMode.AckAfterDispatch), sink);

        Assert.Equal(1, tool.InvocationsOf("c1"));
        Assert.Equal(1, pipeline.Stats.Completed);
        Assert.Equal(1, pipeline.Stats.Skipped);
        Assert.Equal(0, pipeline.Stats.DeadlineSettles);
        Assert.Equal(0, pipeline.Stats.Nacked);
        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        Assert.Equal(SettleKind.Acked, source.Settled[1]);
        Assert.Contains(sink.Events, e => e.EventType == "command.skipped");
    }

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

        await Eventually.Returns(run, QuickStopBound, "after the source was exhausted");
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

    /// <summary>
    /// A claimer is told which delivery it claims: the description the source gave for that very
    /// handle (a claim that depends on the delivery, e.g. the KV claimer's stream sequence, is
    /// otherwise made for the wrong one). Many commands, claimed eight at a time by a claimer that
    /// yields at random, so a context built from a delivery other than the one claimed would show.
    /// </summary>
    [Fact]
    public async Task A_claimer_gets_the_delivery_information_the_source_gave_for_that_very_delivery()
    {
        const int count = 2_000;
        var source = new DescribingSource(count);
        var claimer = new ContextRecordingClaimer(seed: 15);
        var options = PipelineHarness.FastOptions() with { Claim = new BlockOptions { Parallelism = 8 }, Dispatch = new BlockOptions { Parallelism = 8 } };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(count, pipeline.Stats.Completed);
        Assert.Equal(count, claimer.Seen.Count);
        foreach (var (command, delivery) in claimer.Seen)
        {
            // Handle n carries command "c{n}", and the source describes handle n as Described(n).
            var handle = long.Parse(command.CommandId.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(new Described(handle), delivery);
        }

        Assert.Equal(count, claimer.Seen.Select(seen => seen.Command.CommandId).Distinct().Count());
    }

    /// <summary>A source without <see cref="ISupportsDeliveryInfo{THandle}"/>: the claimer gets the pulled command and no delivery.</summary>
    [Fact]
    public async Task Without_the_capability_a_claimer_gets_no_delivery_information()
    {
        var source = new RecordingSource(Enumerable.Range(0, 50).Select(i => ClaimOutcome.Claimed(TestCommands.Make($"c{i}"))));
        var claimer = new ContextRecordingClaimer(seed: 15);
        var options = PipelineHarness.FastOptions() with { Claim = new BlockOptions { Parallelism = 4 } };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options, claimer);

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(50, pipeline.Stats.Completed);
        Assert.Equal(50, claimer.Seen.Count);
        Assert.All(claimer.Seen, seen => Assert.Null(seen.Delivery));
    }

    /// <summary>Without a claimer (the pass-through) the source is never asked to describe a delivery: runs without one pay nothing for the context.</summary>
    [Fact]
    public async Task Without_a_claimer_the_source_is_never_asked_to_describe_a_delivery()
    {
        var source = new DescribingSource(200);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(200, pipeline.Stats.Completed);
        Assert.Equal(0, source.DescribeCalls);
    }

    /// <summary>What <see cref="DescribingSource"/> says of handle <paramref name="Handle"/>.</summary>
    private sealed record Described(long Handle);

    /// <summary>Hands out <c>c{n}</c> on handle n and describes each delivery by its handle; acks and nacks are ignored.</summary>
    private sealed class DescribingSource(int count) : ICommandSource<long>, ISupportsDeliveryInfo<long>
    {
        private long _next = -1;
        private int _described;

        public int DescribeCalls => Volatile.Read(ref _described);

        public ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
        {
            var handle = Interlocked.Increment(ref _next);
            return new(handle < count ? new Pulled<long>(ClaimOutcome.Claimed(TestCommands.Make($"c{handle}")), handle) : null);
        }

        public object? DeliveryOf(long handle)
        {
            Interlocked.Increment(ref _described);
            return new Described(handle);
        }

        public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask NackAsync(long handle, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>Claims everything, yielding or waiting a moment at random first (so claims interleave); records each context's command and delivery.</summary>
    private sealed class ContextRecordingClaimer(int seed) : IClaimer
    {
        private readonly Random _random = new(seed);

        public ConcurrentBag<(Command Command, object? Delivery)> Seen { get; } = [];

        public async ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
        {
            int pause;
            lock (_random)
            {
                pause = _random.Next(4);
            }

            if (pause == 0)
            {
                await Task.Delay(1, cancellationToken);
            }
            else
            {
                await Task.Yield();
            }

            Seen.Add((context.Command!, context.Delivery));
            return context.Pulled;
        }
    }
}
