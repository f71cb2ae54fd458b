namespace Pipeline.Tests.Engine;

/// <summary>Each outcome and each dispatch result leads to its one settle and its events.</summary>
public sealed class PipelineOutcomeTests
{
    private static async Task<(RecordingSource Source, CollectingSink Sink, PipelineStats Stats)> Run(
        IEnumerable<ClaimOutcome> outcomes, PipelineOptions? options = null, ToolRegistry? tools = null)
    {
        var source = new RecordingSource(outcomes);
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<long>(source, tools ?? PipelineHarness.Tools(), sink, options ?? PipelineHarness.FastOptions());
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, source.DuplicateSettles);
        Assert.Equal(source.Pulled, source.Settled.Count);
        return (source, sink, pipeline.Stats);
    }

    [Fact]
    public async Task Claimed_is_acked_before_dispatch_and_completes()
    {
        var (source, sink, stats) = await Run([ClaimOutcome.Claimed(TestCommands.Make("a", "echo", """{"x":1}"""))]);

        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        Assert.Equal([EventTypes.CommandClaimed, EventTypes.CommandStarted, EventTypes.CommandCompleted], sink.TypesFor("a"));
        var completed = sink.For("a").Last();
        Assert.Equal(EventStatus.Completed, completed.Status);
        Assert.Equal("""{"x":1}""", completed.Result.GetRawText());
        Assert.Equal("test-worker", completed.WorkerId);
        Assert.Equal(12345, completed.ExecutionId);
        Assert.NotNull(completed.DurationMs);
        Assert.Equal(1, stats.Completed);

        // Ack before dispatch: the ack comes before the tool starts.
        var ackIndex = source.Log.ToList().FindIndex(e => e.Handle == 0);
        Assert.Equal(0, ackIndex);
    }

    [Fact]
    public async Task AlreadyClaimed_is_acked_and_skipped()
    {
        var (source, sink, stats) = await Run([ClaimOutcome.AlreadyClaimed(TestCommands.Make("b"))]);

        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        var skipped = Assert.Single(sink.Events);
        Assert.Equal(EventTypes.CommandSkipped, skipped.EventType);
        Assert.Equal("b", skipped.CommandId);
        Assert.Equal(1, stats.Skipped);
        Assert.Equal(0, stats.Completed);
    }

    [Fact]
    public async Task RetryLater_is_nacked_with_a_delay_and_reported()
    {
        var (source, sink, stats) = await Run([ClaimOutcome.RetryLater("overload")], PipelineHarness.FastOptions() with
        {
            NackBackoff = new Backoff { Base = TimeSpan.FromSeconds(1) },
        });

        Assert.Equal(SettleKind.NackedWithDelay, source.Settled[0]);
        var retry = Assert.Single(sink.Events);
        Assert.Equal(EventTypes.ClaimRetry, retry.EventType);
        Assert.Equal("overload", retry.Error);
        Assert.Equal(1, stats.ClaimRetries);
    }

    [Fact]
    public async Task Failed_is_terminated_by_default_and_reported()
    {
        var (source, sink, _) = await Run([ClaimOutcome.Failed("malformed payload")]);

        Assert.Equal(SettleKind.Terminated, source.Settled[0]);
        var failed = Assert.Single(sink.Events);
        Assert.Equal(EventTypes.ClaimFailed, failed.EventType);
        Assert.Equal("malformed payload", failed.Error);
    }

    [Fact]
    public async Task Failed_is_nacked_when_configured_to()
    {
        var (source, _, _) = await Run([ClaimOutcome.Failed("malformed payload")], PipelineHarness.FastOptions() with
        {
            FailedClaimAction = FailedClaimAction.Nack,
        });

        Assert.Equal(SettleKind.Nacked, source.Settled[0]);
    }

    [Fact]
    public async Task An_unknown_tool_is_a_command_failed_that_names_the_registered_tools()
    {
        var (source, sink, stats) = await Run([ClaimOutcome.Claimed(TestCommands.Make("u", "teleport"))]);

        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        var failed = sink.For("u").Last();
        Assert.Equal(EventTypes.CommandFailed, failed.EventType);
        Assert.Contains("unknown tool_kind 'teleport'", failed.Error, StringComparison.Ordinal);
        Assert.Contains("echo, noop", failed.Error, StringComparison.Ordinal);
        Assert.Equal(1, stats.Failed);
    }

    [Fact]
    public async Task A_throwing_tool_is_a_command_failed_not_a_crash()
    {
        var boom = new ScriptedTool("boom", (_, _) => throw new InvalidOperationException("kaput"));
        var (_, sink, _) = await Run(
            [ClaimOutcome.Claimed(TestCommands.Make("t1", "boom")), ClaimOutcome.Claimed(TestCommands.Make("t2"))],
            tools: PipelineHarness.Tools(boom));

        Assert.Contains("kaput", sink.For("t1").Last().Error, StringComparison.Ordinal);
        Assert.Equal(EventTypes.CommandCompleted, sink.For("t2").Last().EventType);
    }

    [Fact]
    public async Task Transient_failures_are_retried_in_process()
    {
        var calls = 0;
        var flaky = new ScriptedTool("flaky", (_, _) => new ValueTask<ToolResult>(
            Interlocked.Increment(ref calls) < 3 ? ToolResult.Failure("busy", transient: true) : ToolResult.Success()));
        var (_, sink, _) = await Run([ClaimOutcome.Claimed(TestCommands.Make("f", "flaky"))], tools: PipelineHarness.Tools(flaky));

        Assert.Equal(3, calls);
        Assert.Equal(EventTypes.CommandCompleted, sink.For("f").Last().EventType);
    }

    [Fact]
    public async Task Ack_after_dispatch_acks_on_success()
    {
        var (source, sink, _) = await Run([ClaimOutcome.Claimed(TestCommands.Make("s"))], PipelineHarness.FastOptions(AckMode.AckAfterDispatch));

        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        Assert.Equal(EventTypes.CommandCompleted, sink.For("s").Last().EventType);
    }

    /// <summary>One command of a tool that always fails, ack after dispatch, 3 attempts; <paramref name="attempts"/> made before this delivery.</summary>
    private static async Task<(RecordingSource Source, CollectingSink Sink)> RunAlwaysFailingAfterDispatch(string id, int attempts)
    {
        var failing = new ScriptedTool("fail", (_, _) => new ValueTask<ToolResult>(ToolResult.Failure("nope")));
        var (source, sink, _) = await Run(
            [ClaimOutcome.Claimed(TestCommands.Make(id, "fail", attempts: attempts))],
            PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { MaxAttempts = 3 },
            PipelineHarness.Tools(failing));
        return (source, sink);
    }

    [Fact]
    public async Task Ack_after_dispatch_nacks_a_failure_with_attempts_left()
    {
        var (source, sink) = await RunAlwaysFailingAfterDispatch("n", attempts: 1);

        Assert.Equal(SettleKind.Nacked, source.Settled[0]);
        var failed = sink.For("n").Last();
        Assert.Equal(EventTypes.CommandFailed, failed.EventType);
        Assert.Contains("attempt 2 of 3; redelivering", failed.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ack_after_dispatch_gives_up_after_max_attempts()
    {
        var (source, sink) = await RunAlwaysFailingAfterDispatch("g", attempts: 2);

        Assert.Equal(SettleKind.Terminated, source.Settled[0]);
        Assert.Contains("attempt 3 of 3; giving up", sink.For("g").Last().Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ack_after_dispatch_gives_up_at_once_on_an_unknown_tool()
    {
        var (source, sink, _) = await Run([ClaimOutcome.Claimed(TestCommands.Make("x", "nope"))], PipelineHarness.FastOptions(AckMode.AckAfterDispatch));

        Assert.Equal(SettleKind.Terminated, source.Settled[0]);
        Assert.Contains("not retryable", sink.For("x").Last().Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_duplicate_delivery_of_a_handled_command_is_acked_and_skipped()
    {
        var runs = 0;
        var counting = new ScriptedTool("count", (_, _) =>
        {
            Interlocked.Increment(ref runs);
            return new ValueTask<ToolResult>(ToolResult.Success());
        });
        var (source, sink, stats) = await Run(
            [ClaimOutcome.Claimed(TestCommands.Make("d", "count")), ClaimOutcome.Claimed(TestCommands.Make("d", "count"))],
            PipelineHarness.FastOptions() with { PullParallelism = 1 },
            PipelineHarness.Tools(counting));

        Assert.Equal(1, runs);
        Assert.Equal(SettleKind.Acked, source.Settled[0]);
        Assert.Equal(SettleKind.Acked, source.Settled[1]);
        Assert.Equal(1, stats.Skipped);
        Assert.Contains(sink.For("d"), e => e.EventType == EventTypes.CommandSkipped);
    }

    [Fact]
    public async Task A_throwing_ack_is_counted_and_never_repeated()
    {
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a")), ClaimOutcome.AlreadyClaimed()])
        {
            FailSettle = () => true,
        };
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions());
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, source.Log.Count());
        Assert.Equal(0, source.DuplicateSettles);
        Assert.Equal(2, pipeline.Stats.SettleErrors);
        Assert.Equal(EventTypes.CommandCompleted, sink.For("a").Last().EventType);
    }

    [Fact]
    public async Task A_sink_that_fails_then_recovers_loses_no_event()
    {
        var failures = 3;
        var sink = new CollectingSink { FailWrite = () => Interlocked.Decrement(ref failures) >= 0 };
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a"))]);
        var options = PipelineHarness.FastOptions() with { EmitRetries = 3, EmitRetryBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.Zero } };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options);
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal([EventTypes.CommandClaimed, EventTypes.CommandStarted, EventTypes.CommandCompleted], sink.TypesFor("a"));
        Assert.Equal(3, pipeline.Stats.EventsEmitted);
        Assert.Equal(0, pipeline.Stats.EventsDropped);
    }

    [Fact]
    public async Task A_dead_sink_drops_and_counts_events_after_its_retries_and_every_handle_still_settles()
    {
        var sink = new CollectingSink { FailWrite = () => true };
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a")), ClaimOutcome.Claimed(TestCommands.Make("b"))]);
        var options = PipelineHarness.FastOptions() with
        {
            SinkFailure = SinkFailureAction.Drop,
            EmitRetries = 2,
            EmitRetryBackoff = new Backoff { Base = TimeSpan.Zero, Max = TimeSpan.Zero },
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, options);
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, pipeline.Stats.Completed);
        Assert.Equal(2, source.Settled.Count);
        Assert.Equal(0, source.DuplicateSettles);
        Assert.Equal(6, pipeline.Stats.EventsDropped);
        Assert.Equal(0, pipeline.Stats.EventsEmitted);
        Assert.Empty(sink.Events);
        // The first batch is tried once and retried twice; by then the breaker may have opened and
        // dropped the second batch without a call. Never more than three calls per batch.
        Assert.InRange(sink.Writes, 3, 6);
    }

    [Fact]
    public async Task With_no_emit_retries_a_refused_batch_is_dropped_at_once()
    {
        var sink = new CollectingSink { FailWrite = () => true };
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a"))]);
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions() with { SinkFailure = SinkFailureAction.Drop, EmitRetries = 0 });
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(3, pipeline.Stats.EventsDropped);
        Assert.InRange(sink.Writes, 1, 3); // one call per batch, none repeated
    }

    [Fact]
    public async Task A_failing_next_is_retried_and_nothing_is_lost()
    {
        var failures = 3;
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("a"))])
        {
            FailNext = () => Interlocked.Decrement(ref failures) >= 0,
        };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions() with { PullParallelism = 1 });
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(3, pipeline.Stats.PullErrors);
        Assert.Equal(SettleKind.Acked, source.Settled[0]);
    }

    [Fact]
    public async Task A_throwing_claimer_turns_into_retry_later()
    {
        var source = new RecordingSource([ClaimOutcome.Claimed(TestCommands.Make("c"))]);
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions(), new ThrowingClaimer());
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(SettleKind.Nacked, source.Settled[0]);
        var retry = Assert.Single(sink.Events);
        Assert.Equal(EventTypes.ClaimRetry, retry.EventType);
        Assert.Contains("control plane down", retry.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 4)]
    [InlineData(5, 16)]
    [InlineData(16, 1)]
    [InlineData(256, 1)]
    public async Task Every_event_reaches_the_sink_in_order_whatever_the_batch_size(int batchSize, int dispatchParallelism)
    {
        const int count = 2_000;
        var outcomes = Enumerable.Range(0, count).Select(i => ClaimOutcome.Claimed(TestCommands.Make($"c{i}"))).ToList();
        var (_, sink, stats) = await Run(outcomes, PipelineHarness.FastOptions() with
        {
            EmitBatchSize = batchSize,
            MaxInFlight = 64,
            Dispatch = new BlockOptions { Parallelism = dispatchParallelism },
        });

        Assert.Equal(3 * count, sink.Events.Count);
        Assert.Equal(3 * count, stats.EventsEmitted);
        Assert.Equal(0, stats.InternalErrors);
        foreach (var i in new[] { 0, count / 2, count - 1 })
        {
            Assert.Equal([EventTypes.CommandClaimed, EventTypes.CommandStarted, EventTypes.CommandCompleted], sink.TypesFor($"c{i}"));
        }
    }

    [Fact]
    public async Task A_worker_that_never_idles_still_delivers_every_event()
    {
        // Hold the first command until 64 wait behind it at Dispatch, so the one Dispatch worker then
        // runs 64 commands back to back and Emit's batch fills past its size mid-stream.
        const int count = 500;
        CommandPipeline<Pipeline.Sources.DeliveryHandle>? pipeline = null;
        var gate = new ScriptedTool("gate", async (_, ct) =>
        {
            while (pipeline!.Stats.Blocks.Dispatch.Queued < 64)
            {
                await Task.Delay(1, ct);
            }

            return ToolResult.Success();
        });
        var source = Pipeline.Sources.InMemoryCommandSource.From(
            Enumerable.Range(0, count).Select(i => TestCommands.Make($"c{i}", i == 0 ? "gate" : "noop")));
        var sink = new CollectingSink();
        pipeline = new CommandPipeline<Pipeline.Sources.DeliveryHandle>(source, PipelineHarness.Tools(gate), sink, PipelineHarness.FastOptions() with
        {
            EmitBatchSize = 16,
            MaxInFlight = 65,
            Dispatch = new BlockOptions { Parallelism = 1 },
        });
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, pipeline.Stats.InternalErrors);
        Assert.Equal(3 * count, sink.Events.Count);
        Assert.Equal(count, source.Acked);
    }

    [Fact]
    public void Options_out_of_range_are_refused_with_the_option_named()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new CommandPipeline<long>(
            new RecordingSource([]), PipelineHarness.Tools(), new CollectingSink(),
            new PipelineOptions { Dispatch = new BlockOptions { Parallelism = 0 } }));
        Assert.Contains("Dispatch.Parallelism", error.Message, StringComparison.Ordinal);
    }

    private sealed class ThrowingClaimer : Pipeline.Claiming.IClaimer
    {
        public ValueTask<ClaimOutcome> ClaimAsync(Pipeline.Claiming.ClaimContext context, CancellationToken cancellationToken) =>
            throw new HttpRequestException("control plane down");
    }
}
