using Pipeline.Storage;

namespace Pipeline.Tests.Storage;

/// <summary>What the store source does beyond the conformance suite: fences, batching of settles, a store that refuses for good, a lease lost before a command starts, whole runs.</summary>
public sealed class StoreCommandSourceTests
{
    private static readonly StoreSourceOptions Quick = new() { Owner = "w1", PollInterval = TimeSpan.FromMilliseconds(10) };

    [Fact]
    public async Task A_settle_after_another_worker_reclaimed_the_batch_is_counted_as_fenced_out_and_changes_nothing()
    {
        var time = new FakeTimeProvider();
        var store = new InMemoryQueuedWorkStore(time);
        await EnqueueAsync(store, "c0");
        await using var first = new StoreCommandSource(store, Quick, timeProvider: time);
        var held = (await first.NextAsync(CancellationToken.None))!.Value;

        time.Advance(Quick.LeaseTimeToLive + TimeSpan.FromSeconds(1)); // no keep-alive: the lease lapses
        await using var second = new StoreCommandSource(store, Quick with { Owner = "w2" }, timeProvider: time);
        var taken = (await second.NextAsync(CancellationToken.None))!.Value;

        await first.AckAsync(held.Handle, CancellationToken.None); // no exception: the other worker owns it now
        Assert.Equal((1, 0), (first.FencedOut, first.Acked));
        var row = Assert.Single(await store.ListAsync("c0", CancellationToken.None));
        Assert.Equal((QueuedBatchState.Claimed, "w2"), (row.State, row.Lease!.Owner));

        await second.AckAsync(taken.Handle, CancellationToken.None);
        Assert.Equal((0, 1), (second.FencedOut, second.Acked));
        Assert.Empty(await store.ListAsync("c0", CancellationToken.None));
    }

    [Fact]
    public async Task Settles_that_arrive_together_are_written_in_few_store_calls_and_each_returns_once_written()
    {
        var counting = new CountingStore(new InMemoryQueuedWorkStore());
        const int commands = 512;
        await EnqueueAsync(counting, [.. Enumerable.Range(0, commands).Select(i => $"c{i}")]);
        await using var source = new StoreCommandSource(counting, Quick with { ClaimSessions = commands });
        var pulled = new List<Pulled<StoreHandle>>();
        for (var i = 0; i < commands; i++)
        {
            pulled.Add((await source.NextAsync(CancellationToken.None))!.Value);
        }

        await Task.WhenAll(pulled.Select(p => source.AckAsync(p.Handle, CancellationToken.None).AsTask()));

        Assert.Equal(commands, source.Acked);
        Assert.Equal(commands, counting.Settled);
        // The writer takes what queued while the last write ran, 256 at most: far fewer calls than settles.
        Assert.InRange(counting.SettleCalls, 2, commands / 8);
        var summary = await counting.SummarizeAsync(0, CancellationToken.None);
        Assert.Equal((0, 0, commands), (summary.Pending, summary.Claimed, summary.Completed));
    }

    [Fact]
    public async Task A_store_that_refuses_for_good_ends_the_source_with_its_error()
    {
        var refusing = new CountingStore(new InMemoryQueuedWorkStore()) { ClaimError = new IOException("attempt to write a readonly database"), Transient = false };
        await EnqueueAsync(refusing, "c0");
        await using var source = new StoreCommandSource(refusing, Quick);

        var pulled = await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Null(pulled);
        Assert.Equal("attempt to write a readonly database", source.Fault?.Message);
        Assert.Equal(1, refusing.ClaimCalls); // not retried
    }

    [Fact]
    public async Task A_store_that_cannot_be_reached_is_retried_until_it_answers()
    {
        var flaky = new CountingStore(new InMemoryQueuedWorkStore()) { ClaimError = new TimeoutException("connection refused"), FailingClaims = 3 };
        await EnqueueAsync(flaky, "c0");
        await using var source = new StoreCommandSource(flaky, Quick);

        var pulled = await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal("c0", pulled!.Value.Outcome.Command!.CommandId);
        Assert.Equal((4, 3), (flaky.ClaimCalls, source.StoreErrors));
        Assert.Null(source.Fault);
        await source.AckAsync(pulled.Value.Handle, CancellationToken.None);
    }

    [Fact]
    public async Task A_claimed_command_whose_lease_was_taken_over_while_it_waited_is_not_handed_out()
    {
        var time = new FakeTimeProvider();
        var store = new InMemoryQueuedWorkStore(time);
        await EnqueueAsync(store, "c0", "c1");
        await using var first = new StoreCommandSource(store, Quick with { ClaimSessions = 2 }, timeProvider: time);
        var held = (await first.NextAsync(CancellationToken.None))!.Value; // c1 waits in the source's buffer

        time.Advance(Quick.LeaseTimeToLive + TimeSpan.FromSeconds(1));
        await using var second = new StoreCommandSource(store, Quick with { Owner = "w2", ClaimSessions = 2 }, timeProvider: time);
        var reclaimed = new List<Pulled<StoreHandle>> { (await second.NextAsync(CancellationToken.None))!.Value, (await second.NextAsync(CancellationToken.None))!.Value };

        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.NextAsync(bound.Token).AsTask());
        Assert.Equal(1, first.LapsedBeforeStart);
        Assert.Equal(["c0", "c1"], reclaimed.Select(p => p.Outcome.Command!.CommandId).Order());
        foreach (var pulled in reclaimed)
        {
            await second.AckAsync(pulled.Handle, CancellationToken.None);
        }

        await first.AckAsync(held.Handle, CancellationToken.None);
        Assert.Equal(1, first.FencedOut);
    }

    [Fact]
    public async Task A_payload_that_is_not_a_command_is_a_failed_claim_that_the_pipeline_dead_letters_with_the_reason()
    {
        var store = new InMemoryQueuedWorkStore();
        await store.EnqueueAsync([new QueuedBatchDraft { SessionId = "s", Payload = "{not json"u8.ToArray() }], CancellationToken.None);
        await EnqueueAsync(store, "good");
        await using var source = new StoreCommandSource(store, Quick with { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        var sink = new CollectingSink();

        await new CommandPipeline<StoreHandle>(source, PipelineHarness.Tools(), sink, PipelineHarness.FastOptions())
            .RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var summary = await store.SummarizeAsync(10, CancellationToken.None);
        Assert.Equal((0, 0, 1, 1), (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered));
        Assert.Contains("is not a command", Assert.Single(summary.DeadLetters).DeadLetterReason);
    }

    [Theory]
    [InlineData(AckMode.AckBeforeDispatch)]
    [InlineData(AckMode.AckAfterDispatch)]
    public async Task A_pipeline_over_the_store_runs_every_command_once_and_leaves_every_batch_completed(AckMode mode)
    {
        var store = new InMemoryQueuedWorkStore();
        const int commands = 2_000;
        await EnqueueAsync(store, [.. Enumerable.Range(0, commands).Select(i => $"c{i}")]);
        await using var source = new StoreCommandSource(store, Quick with { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        var runs = new ConcurrentDictionary<string, int>();
        var counting = new CountingTool(runs);
        var options = PipelineHarness.FastOptions(mode);

        await new CommandPipeline<StoreHandle>(source, PipelineHarness.Tools(counting), new CollectingSink(), options)
            .RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(commands, runs.Count);
        Assert.All(runs, r => Assert.Equal(1, r.Value));
        var summary = await store.SummarizeAsync(0, CancellationToken.None);
        Assert.Equal((0, 0, commands, 0), (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered));
        Assert.Equal((commands, 0), (source.Acked, source.FencedOut));
    }

    [Fact]
    public async Task A_claim_that_returns_after_stop_began_is_handed_back_at_once()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var store = new CountingStore(new InMemoryQueuedWorkStore(time)) { ClaimGate = release.Task };
        await EnqueueAsync(store, "c0");
        var source = new StoreCommandSource(store, Quick, timeProvider: time);
        var pull = source.NextAsync(CancellationToken.None).AsTask();
        await Eventually.WaitFor(() => store.ClaimCalls == 1, Eventually.DefaultBound, "the claim reached the store");

        var stopping = source.StopPullingAsync();
        release.SetResult(); // the claim commits after stop began: its batch is this worker's now
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        await source.DisposeAsync();

        Assert.Null(await pull.WaitAsync(TimeSpan.FromSeconds(10)));
        var left = Assert.Single(await store.ListPendingAsync("c0", CancellationToken.None)); // pending again now, not when the lease lapses
        Assert.Equal((QueuedBatchState.Pending, 1), (left.State, left.Attempts));
        Assert.Equal((1, 1), (source.Claimed, source.Nacked));
    }

    [Fact]
    public async Task A_settle_the_store_refuses_does_not_fail_the_settles_written_with_it()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var store = new CountingStore(new InMemoryQueuedWorkStore()) { SettleGate = release.Task, Transient = false, RefuseSettleOf = "c2" };
        await EnqueueAsync(store, "c0", "c1", "c2");
        await using var source = new StoreCommandSource(store, Quick with { ClaimSessions = 3 });
        var pulled = new List<Pulled<StoreHandle>>();
        for (var i = 0; i < 3; i++)
        {
            pulled.Add((await source.NextAsync(CancellationToken.None))!.Value);
        }

        var byId = pulled.ToDictionary(p => p.Outcome.Command!.CommandId);
        var first = source.AckAsync(byId["c0"].Handle, CancellationToken.None).AsTask(); // holds the writer at the gate
        await Eventually.WaitFor(() => store.SettleCalls == 1, Eventually.DefaultBound, "the first settle reached the store");
        var good = source.AckAsync(byId["c1"].Handle, CancellationToken.None).AsTask();
        var bad = source.TerminateAsync(byId["c2"].Handle, "refused by the store", CancellationToken.None).AsTask();
        release.SetResult();

        await first.WaitAsync(TimeSpan.FromSeconds(10));
        await good.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => bad.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal((2, 0), (source.Acked, source.Terminated));
        Assert.Empty(await store.ListAsync("c1", CancellationToken.None));
        Assert.Equal(QueuedBatchState.Claimed, Assert.Single(await store.ListAsync("c2", CancellationToken.None)).State);
    }

    [Fact]
    public async Task A_hand_back_the_store_refuses_still_lets_stop_end_and_dispose_close_the_source()
    {
        var store = new CountingStore(new InMemoryQueuedWorkStore()) { Transient = false, RefuseSettleOf = "c1" };
        await EnqueueAsync(store, "c0", "c1");
        var source = new StoreCommandSource(store, Quick with { ClaimSessions = 2 });
        var held = (await source.NextAsync(CancellationToken.None))!.Value; // c1 waits in the buffer
        Assert.Equal("c0", held.Outcome.Command!.CommandId);

        await source.StopPullingAsync().WaitAsync(TimeSpan.FromSeconds(10)); // c1's hand-back is refused: logged, not thrown
        await source.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        await Assert.ThrowsAsync<ObjectDisposedException>(() => source.AckAsync(held.Handle, CancellationToken.None).AsTask()); // the settle writer is closed
        Assert.Equal(QueuedBatchState.Claimed, Assert.Single(await store.ListAsync("c1", CancellationToken.None)).State); // its lease lapses
    }

    /// <summary>
    /// The store is unreachable for 1.5 s from the first settle: longer than the engine's settle
    /// timeout (500 ms), shorter than the source's (10 s), which it states to the engine. The settles
    /// are retried and land once the store answers: every command completed, no settle error.
    /// </summary>
    [Fact]
    public async Task A_store_outage_longer_than_the_engines_settle_timeout_and_shorter_than_the_sources_costs_no_settle_error()
    {
        var down = new CountingStore(new InMemoryQueuedWorkStore()) { SettleOutage = TimeSpan.FromSeconds(1.5) };
        const int commands = 50;
        await EnqueueAsync(down, [.. Enumerable.Range(0, commands).Select(i => $"c{i}")]);
        await using var source = new StoreCommandSource(down, Quick with { IdleTimeout = TimeSpan.FromMilliseconds(300), SettleTimeout = TimeSpan.FromSeconds(10) });
        var runs = new ConcurrentDictionary<string, int>();
        var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch);
        Assert.Equal(TimeSpan.FromMilliseconds(500), options.SettleTimeout);

        var pipeline = new CommandPipeline<StoreHandle>(source, PipelineHarness.Tools(new CountingTool(runs)), new CollectingSink(), options);
        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(source.StoreErrors > 0, "the store never failed a settle: no outage was ridden out");
        Assert.Equal((commands, 0L), (pipeline.Stats.Acked, pipeline.Stats.SettleErrors));
        Assert.All(runs, r => Assert.Equal(1, r.Value));
        var summary = await down.SummarizeAsync(0, CancellationToken.None);
        Assert.Equal((0, 0, commands), (summary.Pending, summary.Claimed, summary.Completed));
    }

    /// <summary>
    /// An outage longer than the source's settle timeout (400 ms here, the store down 3 s): each
    /// settle gives up at its bound, counted as a settle error, and its batch stays claimed in the
    /// store until the lease lapses: nothing is lost.
    /// </summary>
    [Fact]
    public async Task A_store_outage_longer_than_the_sources_settle_timeout_fails_the_settle_and_leaves_the_batch_claimed()
    {
        var down = new CountingStore(new InMemoryQueuedWorkStore()) { SettleOutage = TimeSpan.FromSeconds(3) };
        await EnqueueAsync(down, "c0");
        await using var source = new StoreCommandSource(down, Quick with { SettleTimeout = TimeSpan.FromMilliseconds(400) });
        var pulled = (await source.NextAsync(CancellationToken.None))!.Value;

        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<TimeoutException>(() => source.AckAsync(pulled.Handle, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(2.5));
        Assert.Equal(1, (await down.SummarizeAsync(0, CancellationToken.None)).Claimed);
    }

    /// <summary>
    /// A settle that queues while an earlier write waits out an outage is given what is left of its
    /// own timeout, not a fresh one after that write gives up: it ends within the bound the source
    /// states to the engine (1 s here; with a fresh one it would end nearly 2 s after its call).
    /// </summary>
    [Fact]
    public async Task A_settle_queued_behind_a_write_waiting_out_an_outage_ends_within_its_own_timeout_of_its_call()
    {
        var down = new CountingStore(new InMemoryQueuedWorkStore()) { SettleOutage = TimeSpan.FromSeconds(10) };
        await EnqueueAsync(down, "c0", "c1");
        await using var source = new StoreCommandSource(down, Quick with { SettleTimeout = TimeSpan.FromSeconds(1) });
        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        var second = (await source.NextAsync(CancellationToken.None))!.Value;

        var earlier = source.AckAsync(first.Handle, CancellationToken.None).AsTask();
        await Task.Delay(50);
        var clock = Stopwatch.StartNew();
        var later = source.AckAsync(second.Handle, CancellationToken.None).AsTask();

        await Assert.ThrowsAsync<TimeoutException>(() => earlier.WaitAsync(TimeSpan.FromSeconds(30)));
        await Assert.ThrowsAsync<TimeoutException>(() => later.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.6), $"the later settle ended {clock.Elapsed} after its call (its timeout is 1 s)");
    }

    private static Task EnqueueAsync(IQueuedWorkStore store, params string[] ids) =>
        store.EnqueueAsync(
            [.. ids.Select(id => new QueuedBatchDraft { SessionId = id, IdempotencyKey = id, Payload = JsonSerializer.SerializeToUtf8Bytes(TestCommands.Make(id, "count")) })],
            CancellationToken.None).AsTask();

    /// <summary>Counts each command's runs.</summary>
    private sealed class CountingTool(ConcurrentDictionary<string, int> runs) : ITool
    {
        public string Kind => "count";

        public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
        {
            runs.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
            return new(ToolResult.Success());
        }
    }

    /// <summary>The real in-memory store, counting calls, failing claims on request.</summary>
    private sealed class CountingStore(IQueuedWorkStore inner) : IQueuedWorkStore
    {
        private int _claimCalls;
        private int _settleCalls;
        private int _settled;

        public Exception? ClaimError { get; init; }

        public int FailingClaims { get; init; } = int.MaxValue;

        public bool Transient { get; init; } = true;

        /// <summary>How long every settle fails as unreachable, from the first settle call (a server restarting).</summary>
        public TimeSpan SettleOutage { get; init; }

        private long _firstSettleAt;

        public int ClaimCalls => Volatile.Read(ref _claimCalls);

        public int SettleCalls => Volatile.Read(ref _settleCalls);

        public int Settled => Volatile.Read(ref _settled);

        public bool IsTransient(Exception exception) => Transient && exception is not OperationCanceledException;

        /// <summary>When set, a claim waits for it (deaf to cancellation, as a store call that already reached the server is) before it runs.</summary>
        public Task? ClaimGate { get; init; }

        /// <summary>When set, the first settle call waits for it before it runs.</summary>
        public Task? SettleGate { get; init; }

        /// <summary>A command id whose settle the store refuses (as PostgreSQL refuses a reason holding a NUL): the whole call fails, nothing written.</summary>
        public string? RefuseSettleOf { get; init; }

        public ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
        {
            var call = Interlocked.Increment(ref _claimCalls);
            if (ClaimGate is { } gate)
            {
                return GatedAsync(gate, () => inner.ClaimReadyAsync(lease, maxSessions, maxBatchesPerSession, CancellationToken.None));
            }

            return ClaimError is { } error && call <= FailingClaims
                ? ValueTask.FromException<IReadOnlyList<QueuedWorkClaim>>(error)
                : inner.ClaimReadyAsync(lease, maxSessions, maxBatchesPerSession, cancellationToken);
        }

        public ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
        {
            Interlocked.CompareExchange(ref _firstSettleAt, Stopwatch.GetTimestamp(), 0);
            if (Stopwatch.GetElapsedTime(Interlocked.Read(ref _firstSettleAt)) < SettleOutage)
            {
                return ValueTask.FromException<IReadOnlyList<SettleStatus>>(new TimeoutException("the server is restarting"));
            }

            var call = Interlocked.Increment(ref _settleCalls);
            Interlocked.Add(ref _settled, settlements.Count);
            if (RefuseSettleOf is { } refused && settlements.Any(s => inner.ListAsync(refused, CancellationToken.None).Result.Any(b => b.BatchId == s.BatchId)))
            {
                return ValueTask.FromException<IReadOnlyList<SettleStatus>>(new ArgumentException($"the store refuses the settle of {refused}"));
            }

            return call == 1 && SettleGate is { } gate
                ? GatedAsync(gate, () => inner.SettleAsync(settlements, cancellationToken))
                : inner.SettleAsync(settlements, cancellationToken);
        }

        public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken) => inner.EnqueueAsync(drafts, cancellationToken);

        public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken) => inner.ClaimSessionAsync(sessionId, lease, maxBatches, cancellationToken);

        public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken) => inner.ClaimByIdsAsync(sessionId, batchIds, lease, cancellationToken);

        public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken) => inner.RenewAsync(fence, timeToLive, cancellationToken);

        public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken) => inner.CancelAsync(sessionId, batchId, cancellationToken);

        public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) => inner.ListAsync(sessionId, cancellationToken);

        public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) => inner.ListPendingAsync(sessionId, cancellationToken);

        public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken) => inner.SummarizeAsync(maxListed, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();

        private static async ValueTask<T> GatedAsync<T>(Task gate, Func<ValueTask<T>> call)
        {
            await gate;
            return await call();
        }
    }
}
