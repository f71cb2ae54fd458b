using System.Globalization;

namespace Pipeline.Tests.Engine;

/// <summary>
/// The exactly-once invariant with every callee hostile at once: a keep-alive source that may
/// honour its tokens, claimers with every outcome (throwing, without a command, default, hanging
/// past their token), tools that fail, throw, time out and hang past their token, a fast, slow,
/// blocking or dead sink under either sink-failure policy, both ack modes, and a stop in the middle
/// whose hard deadline comes while callees still hang. Whatever happens, every handle the source
/// handed out gets exactly one settle call, no renewal of a handle begins after its settle began
/// or overlaps another, the counters add up, and <c>RunAsync</c> returns within the bound.
/// </summary>
/// <remarks>
/// Seeded: each row prints its seed; set PIPELINE_TEST_SEED to replay it. The expected values
/// come from the source's own records and the scenario, never from the engine.
/// </remarks>
public sealed class ExactlyOnceUnderHostileCalleesTests(ITestOutputHelper output, ExactlyOnceUnderHostileCalleesTests.Warmup warmup)
    : IClassFixture<ExactlyOnceUnderHostileCalleesTests.Warmup>
{
    private const int Items = 20_000;
    private const int DefaultSeed = 20261126;

    private static readonly TimeSpan SettleTimeout = TimeSpan.FromMilliseconds(300);

    /// <summary>Slack on top of ShutdownTimeout + SettleTimeout for a loaded 2-core machine.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(3);

    /// <summary>A run that is not stopped must end by itself within this.</summary>
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(12);

    /// <summary>A stopping row stops here at the latest, even if it never reaches its stop point (a dead sink under back-pressure stalls pulling).</summary>
    private static readonly TimeSpan StopCap = TimeSpan.FromSeconds(1.5);

    /// <summary>The event sink of a row.</summary>
    public enum Sink
    {
        Fast,
        Slow,
        Blocking,
        Dead,
    }

    /// <summary>How a row stops.</summary>
    public enum Stop
    {
        /// <summary>Runs until the source is exhausted.</summary>
        None,

        /// <summary><see cref="CommandPipeline{THandle}.RequestStop"/> in the middle.</summary>
        RequestStop,

        /// <summary>The token passed to <c>RunAsync</c> is cancelled in the middle.</summary>
        CancelToken,
    }

    // Every sink × sink-failure policy × ack mode, with stop kind and token honouring spread so
    // that each pair of values meets in some row. A dead sink under back-pressure holds every
    // delivery until the deadline, so it is only run with a stop.
    [Theory]
    [InlineData(Sink.Fast, SinkFailureAction.Backpressure, AckMode.AckBeforeDispatch, Stop.None, true)]
    [InlineData(Sink.Fast, SinkFailureAction.Backpressure, AckMode.AckAfterDispatch, Stop.RequestStop, false)]
    [InlineData(Sink.Fast, SinkFailureAction.Drop, AckMode.AckBeforeDispatch, Stop.CancelToken, false)]
    [InlineData(Sink.Fast, SinkFailureAction.Drop, AckMode.AckAfterDispatch, Stop.RequestStop, true)]
    [InlineData(Sink.Slow, SinkFailureAction.Backpressure, AckMode.AckBeforeDispatch, Stop.RequestStop, true)]
    [InlineData(Sink.Slow, SinkFailureAction.Backpressure, AckMode.AckAfterDispatch, Stop.None, false)]
    [InlineData(Sink.Slow, SinkFailureAction.Drop, AckMode.AckBeforeDispatch, Stop.CancelToken, true)]
    [InlineData(Sink.Slow, SinkFailureAction.Drop, AckMode.AckAfterDispatch, Stop.None, true)]
    [InlineData(Sink.Blocking, SinkFailureAction.Backpressure, AckMode.AckBeforeDispatch, Stop.CancelToken, false)]
    [InlineData(Sink.Blocking, SinkFailureAction.Backpressure, AckMode.AckAfterDispatch, Stop.None, true)]
    [InlineData(Sink.Blocking, SinkFailureAction.Drop, AckMode.AckBeforeDispatch, Stop.RequestStop, false)]
    [InlineData(Sink.Blocking, SinkFailureAction.Drop, AckMode.AckAfterDispatch, Stop.CancelToken, true)]
    [InlineData(Sink.Dead, SinkFailureAction.Backpressure, AckMode.AckBeforeDispatch, Stop.RequestStop, true)]
    [InlineData(Sink.Dead, SinkFailureAction.Backpressure, AckMode.AckAfterDispatch, Stop.CancelToken, false)]
    [InlineData(Sink.Dead, SinkFailureAction.Drop, AckMode.AckBeforeDispatch, Stop.None, false)]
    [InlineData(Sink.Dead, SinkFailureAction.Drop, AckMode.AckAfterDispatch, Stop.RequestStop, true)]
    public async Task Every_handle_gets_exactly_one_settle_call_and_no_renewal_after_it(Sink sink, SinkFailureAction sinkFailure, AckMode mode, Stop stop, bool honourTokens)
    {
        var baseSeed = int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : DefaultSeed;
        var rowKey = ((int)sink * 1000) + ((int)sinkFailure * 100) + ((int)mode * 10) + (int)stop;
        var seed = (int)(Draw.Hash(baseSeed, rowKey, honourTokens ? 1 : 0) & int.MaxValue);
        var random = new Random(seed);
        var stopping = stop != Stop.None;
        var scenario = new Scenario(random, stopping);
        var keepAlive = TimeSpan.FromMilliseconds(random.Next(1, 6));
        var shutdown = TimeSpan.FromMilliseconds(random.Next(100, 301));
        var stopAt = stopping ? random.Next(Items * 35 / 100, Items * 60 / 100) : -1;
        var options = new PipelineOptions
        {
            AckMode = mode,
            SinkFailure = sinkFailure,
            PullParallelism = 3,
            Claim = new BlockOptions { Parallelism = 8 },
            AckDecision = new BlockOptions { Parallelism = 4 },
            Dispatch = new BlockOptions { Parallelism = 16 },
            Emit = new BlockOptions { Parallelism = random.Next(1, 3) },
            MaxInFlight = 256,
            EmitBatchSize = 64,
            MaxAttempts = 3,
            FailedClaimAction = random.Next(2) == 0 ? FailedClaimAction.Terminate : FailedClaimAction.Nack,
            NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(8) },
            ToolTimeout = TimeSpan.FromMilliseconds(8),
            ToolRetries = 1,
            ToolRetryDelay = TimeSpan.Zero,
            ShutdownTimeout = shutdown,
            SettleTimeout = SettleTimeout,
            PullErrorBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.Zero },
            EmitRetries = 2,
            EmitRetryBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(4) },
            RecentCommandIds = random.Next(4) switch { 0 => 0, 1 => 64, _ => 4096 },
            WorkerId = "hostile-test",
        };
        var row = $"sink {sink}/{sinkFailure}, {mode}, stop {stop}, source honours tokens {honourTokens}";
        output.WriteLine($"seed {baseSeed} (replay with PIPELINE_TEST_SEED={baseSeed}), row seed {seed}: {row}; {warmup}");
        output.WriteLine(
            $"keep-alive {keepAlive.TotalMilliseconds} ms, shutdown {shutdown.TotalMilliseconds} ms, settle {SettleTimeout.TotalMilliseconds} ms, " +
            $"stop at handle {stopAt}, emit parallelism {options.Emit.Parallelism}, failed claims {options.FailedClaimAction}, recent ids {options.RecentCommandIds}");

        var claimHangs = new Hangs(endless: stopping, budget: 2);
        var toolHangs = new Hangs(endless: stopping, budget: 3);
        var source = new HostileSource(Items, seed, h => scenario.Plans[h].Outcome, h => scenario.Plans[h].Settle)
        {
            KeepAliveInterval = keepAlive,
            HonourTokens = honourTokens,
            StopAt = stopAt,
            LateAfter = SettleTimeout / 2,
            RenewalWaitBudget = SettleTimeout / 2, // a settle waits half its budget for a running renewal
        };
        var claimer = new HostileClaimer(command => scenario.PlanOf(command).Claim, claimHangs);
        var tools = new HostileTools(toolHangs);
        var hostileSink = new HostileSink(sink switch
        {
            Sink.Slow => SinkBehaviour.Slow,
            Sink.Blocking => SinkBehaviour.Blocking,
            Sink.Dead => SinkBehaviour.Dead,
            _ => SinkBehaviour.Fast,
        }, seed);
        var logger = new FirstCriticalLogger();
        var pipeline = new CommandPipeline<long>(source, tools.Registry(), hostileSink, options, claimer, logger: logger);
        void ReleaseAll()
        {
            claimHangs.Release();
            toolHangs.Release();
            source.ReleaseHangs();
        }

        using var stoppingToken = new CancellationTokenSource();
        using var lag = new LagProbe();
        var problems = new List<string>();
        var clock = Stopwatch.StartNew();
        var run = pipeline.RunAsync(stoppingToken.Token);
        try
        {
            TimeSpan bound;
            string boundText;
            if (stopping)
            {
                await Task.WhenAny(source.StopPoint, run, Task.Delay(StopCap));
                if (run.IsCompleted)
                {
                    problems.Add($"RunAsync returned before the stop ({Describe(run)}), after {source.Pulled} of {Items} handles");
                }

                output.WriteLine($"stopping at {clock.ElapsedMilliseconds} ms, {source.Pulled} handles pulled ({(source.StopPoint.IsCompleted ? "stop point reached" : "stop cap reached")})");
                clock.Restart();
                if (stop == Stop.RequestStop)
                {
                    pipeline.RequestStop();
                }
                else
                {
                    await stoppingToken.CancelAsync();
                }

                bound = shutdown + SettleTimeout + Slack;
                boundText = $"ShutdownTimeout {shutdown.TotalMilliseconds:0} ms + SettleTimeout {SettleTimeout.TotalMilliseconds:0} ms + slack {Slack.TotalSeconds:0} s";
            }
            else
            {
                bound = RunBound;
                boundText = "the bound for a run that is not stopped";
            }

            var returned = await Task.WhenAny(run, Task.Delay(bound + TimeSpan.FromSeconds(1))) == run;
            var elapsed = clock.Elapsed;
            var since = stopping ? "after the stop" : "after the start";
            if (!returned)
            {
                problems.Add($"RunAsync had not returned {elapsed.TotalSeconds:0.0} s {since} (bound: {boundText} = {bound.TotalSeconds:0.0} s); " +
                    $"{pipeline.Stats.InFlight} handles in flight, blocks {pipeline.Stats.Blocks}, claim hangs {claimHangs.InProgress}, tool hangs {toolHangs.InProgress}");
            }
            else if (elapsed > bound)
            {
                problems.Add($"RunAsync returned {elapsed.TotalSeconds:0.00} s {since}, past the bound ({boundText} = {bound.TotalSeconds:0.0} s)");
            }

            if (returned && !run.IsCompletedSuccessfully)
            {
                problems.Add($"RunAsync ended with {Describe(run)}");
            }

            // What held when RunAsync returned.
            var hangsAtReturn = (Claims: claimHangs.InProgress, Tools: toolHangs.InProgress);
            var tally = source.Tally();
            var notOnce = source.NotSettledExactlyOnce(scenario.Describe);
            var stats = pipeline.Stats;
            long pulled = stats.Pulled, acked = stats.Acked, nacked = stats.Nacked, terminated = stats.Terminated, settleErrors = stats.SettleErrors;
            output.WriteLine(
                $"returned after {elapsed.TotalMilliseconds:0} ms {since}; source: {tally}; renewals {source.Renewals}, pull faults {source.PullFaults}, " +
                $"settles after a renewal outran the budget {source.SettlesAfterRenewalOutranBudget}; worst scheduling lag {lag.Worst.TotalMilliseconds:0} ms");
            output.WriteLine(
                $"stats: pulled {pulled}, acked {acked}, nacked {nacked}, terminated {terminated}, settle errors {settleErrors}, in flight {stats.InFlight}, " +
                $"duplicate settles {stats.DuplicateSettles}, deadline settles {stats.DeadlineSettles}, completed {stats.Completed}, failed {stats.Failed}, " +
                $"skipped {stats.Skipped}, claim retries {stats.ClaimRetries}, claim failures {stats.ClaimFailures}, renewals {stats.Renewals}/{stats.RenewalErrors} errors, " +
                $"events {stats.EventsEmitted} emitted/{stats.EventsDropped} dropped, internal errors {stats.InternalErrors}, block faults {stats.BlockFaults}");
            output.WriteLine(
                $"callees: claim hangs {claimHangs.Begun} endless/{hangsAtReturn.Claims} at return, tool hangs {toolHangs.Begun} endless/{hangsAtReturn.Tools} at return, " +
                $"tool timeouts {tools.TimedOut}, sink writes {hostileSink.Writes} ({hostileSink.Blocks} blocked, {hostileSink.EventsTaken} events taken)");

            if (notOnce.Count > 0)
            {
                problems.Add($"{notOnce.Count} of {tally.Pulled} handles did not get exactly one settle call, e.g.:\n  {string.Join("\n  ", notOnce.Take(10))}");
            }

            if (tally.SettleCalls != tally.Pulled)
            {
                problems.Add($"the source handed out {tally.Pulled} handles but got {tally.SettleCalls} settle calls");
            }

            var violations = source.Violations();
            if (violations.Length > 0)
            {
                problems.Add($"the source saw, by the time RunAsync returned:\n{violations}");
            }

            if (pulled != tally.Pulled)
            {
                problems.Add($"Stats.Pulled is {pulled}, but the source handed out {tally.Pulled} handles");
            }

            if (pulled != acked + nacked + terminated + settleErrors)
            {
                problems.Add($"Stats: Pulled {pulled} != Acked {acked} + Nacked {nacked} + Terminated {terminated} + SettleErrors {settleErrors} = {acked + nacked + terminated + settleErrors}");
            }

            if (stats.InFlight != 0)
            {
                problems.Add($"Stats.InFlight is {stats.InFlight} after RunAsync returned");
            }

            // Each counter matches what the source saw, except that a call the source took only
            // after more than half the settle budget may have been given up on (a settle error).
            var late = tally.AcceptedLate;
            if (!Within(acked, tally.AcceptedAcks - late, tally.AcceptedAcks) || !Within(nacked, tally.AcceptedNacks - late, tally.AcceptedNacks)
                || !Within(terminated, tally.AcceptedTerminates - late, tally.AcceptedTerminates) || !Within(settleErrors, tally.NotReached, tally.NotReached + late))
            {
                problems.Add(
                    $"the counters do not match what reached the source: Acked {acked} / Nacked {nacked} / Terminated {terminated} / SettleErrors {settleErrors}, " +
                    $"but the source took {tally.AcceptedAcks} acks, {tally.AcceptedNacks} nacks and {tally.AcceptedTerminates} terminates ({late} of them late), and {tally.NotReached} calls did not reach it");
            }

            if (stats.InternalErrors != 0 || stats.BlockFaults != 0)
            {
                problems.Add($"Stats: InternalErrors {stats.InternalErrors}, BlockFaults {stats.BlockFaults} (both must be 0); first critical log: {logger.First ?? "none"}");
            }

            // The scenario must have been as hostile as it says, or the run proves little.
            if (source.Renewals == 0)
            {
                problems.Add($"scenario: no renewal happened at a {keepAlive.TotalMilliseconds} ms keep-alive interval");
            }

            if (tools.TimedOut == 0 && stop == Stop.None)
            {
                problems.Add("scenario: no tool ran into its per-attempt timeout");
            }

            if (stop == Stop.None && tally.Pulled != Items)
            {
                problems.Add($"scenario: a run that was not stopped pulled {tally.Pulled} of {Items} handles");
            }

            if (stopping && (hangsAtReturn.Claims == 0 || stats.DeadlineSettles == 0))
            {
                problems.Add($"scenario: the hard deadline should come while a claimer still hangs with its delivery open ({hangsAtReturn.Claims} claims hanging at return, {stats.DeadlineSettles} deadline settles)");
            }

            // Let every hanging callee go: what it does now must not reach the source either.
            ReleaseAll();
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(150, 30 * keepAlive.TotalMilliseconds)));
            var after = source.Tally();
            if (after.SettleCalls != tally.SettleCalls || after.Pulled != tally.Pulled)
            {
                problems.Add($"after RunAsync returned and the hangs were released, the source got {after.SettleCalls - tally.SettleCalls} more settle calls and handed out {after.Pulled - tally.Pulled} more handles");
            }

            var lateViolations = source.Violations();
            if (lateViolations != violations)
            {
                problems.Add($"the source saw, after the hangs were released:\n{lateViolations}");
            }
        }
        finally
        {
            ReleaseAll();
            if (!run.IsCompleted)
            {
                pipeline.RequestStop();
            }
        }

        Assert.True(problems.Count == 0, $"seed {baseSeed}, row seed {seed} ({row}):\n- {string.Join("\n- ", problems)}");
    }

    /// <summary>
    /// Two Emit writers and a sink that now and then takes a while: no delivery may be lost in
    /// Emit (each frees its in-flight slot), nothing may fail inside the block, and a run that is
    /// not stopped must end when the source is exhausted. Found by the randomized test above (row
    /// Blocking/Backpressure/AckAfterDispatch/None), which hung with 256 deliveries queued at Emit.
    /// </summary>
    [Fact]
    public async Task Two_emit_writers_and_a_sink_that_now_and_then_blocks_lose_no_delivery()
    {
        const int commands = 4_000;
        var source = Pipeline.Sources.InMemoryCommandSource.From(Enumerable.Range(0, commands).Select(i => TestCommands.Make($"c{i}", HostileToolKinds.OkAsync)));
        var sink = new EveryNthWriteBlocksSink(every: 25, TimeSpan.FromMilliseconds(20));
        var logger = new FirstCriticalLogger();
        var options = PipelineHarness.FastOptions() with
        {
            Dispatch = new BlockOptions { Parallelism = 16 },
            Emit = new BlockOptions { Parallelism = 2 },
            EmitBatchSize = 64,
            MaxInFlight = 256,
            ShutdownTimeout = TimeSpan.FromMilliseconds(200),
        };
        var pipeline = new CommandPipeline<Pipeline.Sources.DeliveryHandle>(source, new HostileTools(new Hangs(endless: false, budget: 0)).Registry(), sink, options, logger: logger);

        var run = pipeline.RunAsync(CancellationToken.None);
        var returned = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(5))) == run;
        var stats = pipeline.Stats;
        output.WriteLine($"returned {returned}, acked {source.Acked}, events {stats.EventsEmitted} emitted/{stats.EventsDropped} dropped, sink writes {sink.Writes}, internal errors {stats.InternalErrors}, blocks {stats.Blocks}");
        if (!returned)
        {
            pipeline.RequestStop();
        }

        Assert.True(
            returned && stats.InternalErrors == 0,
            $"with Emit.Parallelism 2 and a sink whose every 25th write takes 20 ms: RunAsync {(returned ? "returned" : "had not returned 5 s after the start")}, " +
            $"{source.Acked} of {commands} acked, {stats.InternalErrors} internal errors (must be 0), Emit holding {stats.Blocks.Emit}; first critical log: {logger.First ?? "none"}");
        Assert.Equal(commands, source.Acked);
        Assert.Equal(3L * commands, stats.EventsEmitted); // claimed, started, completed for each
    }

    /// <summary>
    /// A keep-alive that hangs past its token while its delivery is still open at the hard
    /// deadline: the deadline's nack waits for the renewal (at most the settle budget) and then
    /// must still get a live token, so that it reaches a source that honours its token (a nack
    /// that takes one short round trip). The engine promises settles are never given an
    /// already-cancelled token.
    /// </summary>
    [Fact]
    public async Task At_the_deadline_the_nack_of_a_delivery_whose_renewal_hangs_still_reaches_the_source()
    {
        var command = TestCommands.Make("c0", HostileToolKinds.Ok) with { Step = "s0" };
        var source = new HostileSource(1, DefaultSeed, _ => ClaimOutcome.Claimed(command), _ => SourceSettle.AcceptAfterRoundTrip)
        {
            KeepAliveInterval = TimeSpan.FromMilliseconds(5),
            HonourTokens = true,
            PullFaultRate = 0,
            HangRenewal = h => h == 0,
            RoundTrip = TimeSpan.FromMilliseconds(5),
        };
        var claimHangs = new Hangs(endless: true, budget: 0);
        var claimer = new HostileClaimer(_ => ClaimBehaviour.HangForced, claimHangs); // holds the delivery open until the deadline
        var shutdown = TimeSpan.FromMilliseconds(100);
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ShutdownTimeout = shutdown, SettleTimeout = SettleTimeout };
        var pipeline = new CommandPipeline<long>(source, new HostileTools(new Hangs(endless: false, budget: 0)).Registry(), new HostileSink(SinkBehaviour.Fast, 0), options, claimer);

        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => source.Renewals > 0, TimeSpan.FromSeconds(3), "the renewal of handle 0 began (and hangs)");
            var sinceStop = Stopwatch.StartNew();
            pipeline.RequestStop();
            var bound = shutdown + SettleTimeout + Slack;
            await Eventually.Returns(run, bound, "after the stop");
            output.WriteLine($"RunAsync returned {sinceStop.ElapsedMilliseconds} ms after the stop");

            // The nack is made about when RunAsync returns; give its round trip time to end.
            await Eventually.WaitFor(() => source.FateOf(0) is not (SettleFate.None or SettleFate.Hanging), TimeSpan.FromSeconds(2), "the deadline nack of handle 0 ended");
            var fate = source.FateOf(0);
            output.WriteLine($"handle 0: {fate}; {source.Violations()}");
            Assert.Empty(source.NotSettledExactlyOnce(_ => "c0"));
            Assert.True(
                fate == SettleFate.Accepted,
                $"the deadline nack of handle 0, whose renewal hung, did not reach the source ({fate}): it waited {SettleTimeout.TotalMilliseconds:0} ms for the renewal " +
                $"and was then made with the settle token, which fires {SettleTimeout.TotalMilliseconds:0} ms after the deadline. {source.Violations()}");
        }
        finally
        {
            claimHangs.Release();
            source.ReleaseHangs();
        }
    }

    /// <summary>
    /// At the hard deadline the sweep takes a delivery whose renewal is in flight and waits for
    /// the renewal before it nacks; meanwhile the delivery's tool winds down, Dispatch finds the
    /// delivery settled and hands it on, and Emit frees it. The nack must still go to the
    /// delivery's own handle, once: not to whatever the freed delivery holds by then.
    /// Found by the randomized test above (row Fast/Drop/AckAfterDispatch/RequestStop), where 49
    /// handles were never settled and handle 0 got 50 settle calls.
    /// </summary>
    [Fact]
    public async Task A_deadline_nack_that_waits_for_a_renewal_settles_its_own_handle()
    {
        // Handle 0 runs at once and is acked. Handle 1's tool runs until the deadline and then
        // takes 200 ms to wind down, while its renewal in flight lasts until 500 ms after the
        // deadline (within the 1 s settle budget): the sweep takes handle 1's delivery at the
        // deadline and waits for the renewal, and the delivery is freed before the renewal ends.
        var settleBudget = TimeSpan.FromSeconds(1);
        Command CommandOf(long h) => TestCommands.Make($"c{h}", h == 0 ? "noop" : "slow-to-stop") with { Step = $"s{h}" };
        var source = new HostileSource(2, DefaultSeed, h => ClaimOutcome.Claimed(CommandOf(h)), _ => SourceSettle.Accept)
        {
            KeepAliveInterval = TimeSpan.FromMilliseconds(5),
            HonourTokens = true,
            PullFaultRate = 0,
            HangRenewal = h => h == 1,
            RenewalWaitBudget = settleBudget,
        };
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slowToStop = new ScriptedTool("slow-to-stop", async (_, ct) =>
        {
            started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
                await Task.Delay(200, CancellationToken.None); // cleanup after the cancellation
                throw;
            }

            return ToolResult.Success();
        });
        var shutdown = TimeSpan.FromMilliseconds(100);
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            ShutdownTimeout = shutdown,
            SettleTimeout = settleBudget,
            ToolTimeout = TimeSpan.FromSeconds(30),
            ToolRetries = 0,
        };
        using var renewalEnds = new Timer(_ => source.ReleaseHangs());
        var logger = new DeadlineLogger(() => renewalEnds.Change(500, Timeout.Infinite));
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(slowToStop), new HostileSink(SinkBehaviour.Fast, 0), options, logger: logger);

        output.WriteLine(warmup.ToString());
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromSeconds(3));
            await Eventually.WaitFor(() => source.SettleCallsOf(0) == 1 && source.Renewals > 0, TimeSpan.FromSeconds(3), "handle 0 acked and handle 1 renewing");
            pipeline.RequestStop();
            await Eventually.Returns(run, shutdown + settleBudget + Slack, "after the stop");
            await Eventually.WaitFor(() => source.SettleCallsOf(1) > 0 || source.SettleCallsOf(0) > 1, settleBudget + Slack, "the deadline nack of handle 1 made");
            await Task.Delay(50);
            output.WriteLine($"settle calls: handle 0 {source.SettleCallsOf(0)}, handle 1 {source.SettleCallsOf(1)}; {source.Violations()}");
            Assert.True(
                source.SettleCallsOf(0) == 1 && source.SettleCallsOf(1) == 1,
                $"handle 0 got {source.SettleCallsOf(0)} settle calls and handle 1 got {source.SettleCallsOf(1)} (each must get exactly 1): the deadline nack of handle 1 " +
                $"waited for its renewal while Emit freed the delivery, then settled the handle the freed delivery held. {source.Violations()}");
        }
        finally
        {
            source.ReleaseHangs();
        }
    }

    /// <summary>
    /// Runs the engine once through every path (keep-alive, each claim outcome and tool, a stop
    /// and its deadline) before the class's timed tests: a cold process spends its first second
    /// or so compiling, and timer continuations then run hundreds of milliseconds late.
    /// </summary>
    public sealed class Warmup
    {
        private readonly TimeSpan _took;

        public Warmup()
        {
            var clock = Stopwatch.StartNew();
            Task.Run(async () =>
            {
                foreach (var (mode, stop) in new[] { (AckMode.AckAfterDispatch, false), (AckMode.AckBeforeDispatch, true) })
                {
                    var scenario = new Scenario(new Random(1), stopping: false);
                    var source = new HostileSource(400, 1, h => scenario.Plans[h].Outcome, h => scenario.Plans[h].Settle) { KeepAliveInterval = TimeSpan.FromMilliseconds(2) };
                    var hangs = new Hangs(endless: false, budget: 0);
                    var options = PipelineHarness.FastOptions(mode) with
                    {
                        ToolTimeout = TimeSpan.FromMilliseconds(5),
                        ShutdownTimeout = TimeSpan.FromMilliseconds(20),
                        SettleTimeout = TimeSpan.FromMilliseconds(100),
                    };
                    var pipeline = new CommandPipeline<long>(source, new HostileTools(hangs).Registry(), new HostileSink(SinkBehaviour.Fast, 1), options, new HostileClaimer(c => scenario.PlanOf(c).Claim, hangs));
                    var run = pipeline.RunAsync(CancellationToken.None);
                    if (stop)
                    {
                        await Task.Delay(50);
                        pipeline.RequestStop();
                    }

                    await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(10)));
                    pipeline.RequestStop();
                    source.ReleaseHangs();
                }
            }).GetAwaiter().GetResult();
            _took = clock.Elapsed;
        }

        public override string ToString() => $"warm-up took {_took.TotalMilliseconds:0} ms";
    }

    /// <summary>How late a 5 ms timer continuation runs, at worst: shows when the machine was too loaded for the timings to mean much.</summary>
    private sealed class LagProbe : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private long _worstTicks;

        public LagProbe()
        {
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    var start = Stopwatch.GetTimestamp();
                    await Task.Delay(5).ConfigureAwait(false);
                    var late = Stopwatch.GetElapsedTime(start) - TimeSpan.FromMilliseconds(5);
                    if (late.Ticks > Volatile.Read(ref _worstTicks))
                    {
                        Volatile.Write(ref _worstTicks, late.Ticks);
                    }
                }
            });
        }

        public TimeSpan Worst => TimeSpan.FromTicks(Volatile.Read(ref _worstTicks));

        public void Dispose() => _stop.Cancel();
    }

    /// <summary>A sink whose every <c>every</c>-th write goes asynchronous for <c>block</c>; the others complete at once.</summary>
    private sealed class EveryNthWriteBlocksSink(int every, TimeSpan block) : Pipeline.Events.IEventSink
    {
        private int _writes;

        public int Writes => Volatile.Read(ref _writes);

        public ValueTask WriteAsync(ReadOnlyMemory<Pipeline.Events.PipelineEvent> batch, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _writes) % every == 0 ? new ValueTask(Task.Delay(block, cancellationToken)) : ValueTask.CompletedTask;
    }

    /// <summary>Keeps the first critical message (an internal error) with its exception.</summary>
    private sealed class FirstCriticalLogger : Microsoft.Extensions.Logging.ILogger
    {
        private string? _first;

        public string? First => Volatile.Read(ref _first);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel == Microsoft.Extensions.Logging.LogLevel.Critical;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Interlocked.CompareExchange(ref _first, $"{formatter(state, exception)} {exception?.GetType().Name}: {exception?.Message} {exception?.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}", null);
            }
        }
    }

    /// <summary>Calls <c>onDeadline</c> when the engine logs that the hard deadline passed (event 10); keeps nothing.</summary>
    private sealed class DeadlineLogger(Action onDeadline) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 10)
            {
                onDeadline();
            }
        }
    }

    private static bool Within(long value, long low, long high) => value >= low && value <= high;

    private static string Describe(Task run) =>
        run.Status switch
        {
            TaskStatus.Faulted => $"exception {run.Exception!.GetBaseException()}",
            TaskStatus.Canceled => "cancellation",
            _ => run.Status.ToString(),
        };

    /// <summary>One item of a run: how the source delivers it, what the claimer does, what the source does with its settle.</summary>
    internal readonly record struct ItemPlan(ClaimOutcome Outcome, ClaimBehaviour Claim, SourceSettle Settle);

    /// <summary>The run's plan, drawn up front from the seed: the same seed makes the same items, whatever the interleaving.</summary>
    internal sealed class Scenario
    {
        public Scenario(Random random, bool stopping)
        {
            // A run that stops gets one claim and one tool that hang past their tokens from early on,
            // so the hard deadline always comes while they hang (and, after dispatch, with the tool's delivery open).
            var forcedClaim = stopping ? random.Next(40, 120) : -1;
            var forcedTool = stopping ? random.Next(120, 200) : -1;
            Plans = new ItemPlan[Items];
            for (var i = 0; i < Items; i++)
            {
                var id = i > 0 && random.NextDouble() < 0.03 ? $"c{random.Next(i)}" : $"c{i}";
                var tool = PickTool(random);
                var claim = PickClaim(random);
                var settle = PickSettle(random);
                var attempts = random.Next(0, 3);
                var forced = i == forcedClaim || i == forcedTool;
                if (i == forcedClaim)
                {
                    (id, claim, tool) = ($"hang-claim-{i}", ClaimBehaviour.HangForced, HostileToolKinds.Ok);
                }
                else if (i == forcedTool)
                {
                    (id, claim, tool) = ($"hang-tool-{i}", ClaimBehaviour.Claim, HostileToolKinds.HangForced);
                }

                var command = TestCommands.Make(id, tool, attempts: attempts) with { Step = string.Create(CultureInfo.InvariantCulture, $"s{i}") };
                var outcome = forced ? ClaimOutcome.Claimed(command) : PickOutcome(random, command);
                Plans[i] = new ItemPlan(outcome, claim, settle);
            }
        }

        public ItemPlan[] Plans { get; }

        public ItemPlan PlanOf(Command command) => Plans[int.Parse(command.Step.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture)];

        public string Describe(long handle)
        {
            var plan = Plans[handle];
            var command = plan.Outcome.Command;
            return $"delivered {plan.Outcome.Kind}{(command is null ? " without a command" : $" {command.CommandId} tool {command.ToolKind}")}, claim {plan.Claim}, source settle {plan.Settle}";
        }

        private static ClaimOutcome PickOutcome(Random random, Command command)
        {
            var roll = random.NextDouble();
            var withCommand = random.Next(2) == 0 ? command : null;
            return roll switch
            {
                < 0.88 => ClaimOutcome.Claimed(command),
                < 0.91 => ClaimOutcome.AlreadyClaimed(withCommand),
                < 0.94 => ClaimOutcome.RetryLater("source says later", withCommand),
                < 0.97 => ClaimOutcome.Failed("source says malformed", withCommand),
                < 0.985 => default,
                _ => ClaimOutcome.Claimed(command),
            };
        }

        private static ClaimBehaviour PickClaim(Random random) => Weighted.Pick(random, ClaimBehaviour.Claim,
        [
            (0.60, ClaimBehaviour.Claim), (0.68, ClaimBehaviour.ClaimAsync), (0.72, ClaimBehaviour.AlreadyClaimed), (0.75, ClaimBehaviour.RetryLater),
            (0.78, ClaimBehaviour.RetryLaterWithoutCommand), (0.81, ClaimBehaviour.Failed), (0.84, ClaimBehaviour.FailedWithoutCommand), (0.87, ClaimBehaviour.Default),
            (0.90, ClaimBehaviour.Throw), (0.92, ClaimBehaviour.ThrowAsync), (0.935, ClaimBehaviour.Slow), (0.936, ClaimBehaviour.Hang),
        ]);

        private static string PickTool(Random random) => Weighted.Pick(random, HostileToolKinds.Ok,
        [
            (0.34, HostileToolKinds.Ok), (0.46, HostileToolKinds.OkAsync), (0.51, HostileToolKinds.Slow), (0.59, HostileToolKinds.Fail),
            (0.65, HostileToolKinds.Throw), (0.69, HostileToolKinds.ThrowAsync), (0.74, HostileToolKinds.Transient), (0.77, HostileToolKinds.TransientThrow),
            (0.80, HostileToolKinds.Timeout), (0.82, HostileToolKinds.SpuriousCancel), (0.84, HostileToolKinds.Unknown), (0.841, HostileToolKinds.Hang),
        ]);

        private static SourceSettle PickSettle(Random random) => Weighted.Pick(random, SourceSettle.HangIgnoringToken,
        [
            (0.90, SourceSettle.Accept), (0.96, SourceSettle.AcceptAsync), (0.975, SourceSettle.Throw), (0.99, SourceSettle.ThrowAsync),
            (0.9995, SourceSettle.Accept), (0.99975, SourceSettle.HangHonouringToken),
        ]);
    }
}
