using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Pipeline.Storage;
using Xunit.Abstractions;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// What every <see cref="IQueuedWorkStore"/> must do (the seed's <c>QueuedWorkStore</c>, the
/// contract's doc comments): order within a session, leases and fences, settles, cancel, list,
/// claim by ids, the summary, and many claimers at once. A backend runs it by deriving one sealed
/// class that creates a fresh empty store and moves its clock (<see cref="CreateBackendAsync"/>).
/// </summary>
/// <remarks>
/// A backend whose leases run on a database clock moves it by waiting, so every lease meant to
/// lapse is short (<see cref="ShortTtl"/>, lapsed after <see cref="Lapse"/>) and every lease meant to
/// stay live is long (<see cref="LongTtl"/>): a loaded machine cannot turn a live lease into a
/// lapsed one. Expected values come from what the test enqueued and when, never from the store's
/// answers; "nothing changed" is checked by reading the rows before and after.
/// </remarks>
public abstract class QueuedWorkStoreConformance : ConformanceSuite<QueuedWorkStoreBackend>
{
    /// <summary>A lease meant to lapse within the case.</summary>
    protected static readonly TimeSpan ShortTtl = TimeSpan.FromMilliseconds(300);

    /// <summary>How far the clock moves to lapse a <see cref="ShortTtl"/> lease (or pass a short delay).</summary>
    protected static readonly TimeSpan Lapse = TimeSpan.FromMilliseconds(600);

    /// <summary>A lease (or delay) meant to stay live for the whole case.</summary>
    protected static readonly TimeSpan LongTtl = TimeSpan.FromSeconds(60);

    // Clock readings of a database (microseconds) against the test's: rounding only.
    private static readonly TimeSpan Rounding = TimeSpan.FromMilliseconds(1);

    /// <summary>Creates the suite; randomized cases print their seed to <paramref name="output"/>.</summary>
    protected QueuedWorkStoreConformance(ITestOutputHelper output) => Output = output;

    /// <summary>The test's output.</summary>
    protected ITestOutputHelper Output { get; }

    /// <summary>How many batches the concurrent-claimers case enqueues. Default 2,000.</summary>
    protected virtual int ConcurrentBatches => 2_000;

    /// <summary>Creates a fresh, empty store and the hand on its clock.</summary>
    protected abstract ValueTask<QueuedWorkStoreBackend> CreateBackendAsync();

    // ---- Enqueue ----

    /// <summary>Enqueue keeps call order, gives growing sequences, and stores the batch as given.</summary>
    [ConformanceFact]
    public async Task Enqueued_batches_keep_their_order_and_take_growing_sequences()
    {
        var (backend, store) = await NewAsync();
        var before = await backend.NowAsync();
        var first = await store.EnqueueAsync([Draft("a", "a1"), Draft("b", "b1"), Draft("a", "a2")], default);
        var second = await store.EnqueueAsync([Draft("a", "a3")], default);
        var after = await backend.NowAsync();

        var all = first.Concat(second).ToList();
        Assert.All(all, r => Assert.True(r.Created));
        Assert.Equal(["a1", "b1", "a2", "a3"], all.Select(r => PayloadOf(r.Batch)));
        Assert.True(IsStrictlyIncreasing(all.Select(r => r.Batch.Sequence)), $"sequences {string.Join(", ", all.Select(r => r.Batch.Sequence))}");
        Assert.Equal(4, all.Select(r => r.Batch.BatchId).Distinct().Count());
        foreach (var result in all)
        {
            var batch = result.Batch;
            Assert.Equal(QueuedBatchState.Pending, batch.State);
            Assert.Equal(0, batch.Attempts);
            Assert.Null(batch.Lease);
            Assert.Null(batch.IdempotencyKey);
            Assert.Null(batch.DeadLetterReason);
            AssertWithin(batch.EnqueuedAt, before, after, "enqueued at");
            Assert.Equal(batch.EnqueuedAt, batch.AvailableAt);
        }

        Assert.Equal(["a1", "a2", "a3"], (await store.ListAsync("a", default)).Select(PayloadOf));
        Assert.Equal(["b1"], (await store.ListAsync("b", default)).Select(PayloadOf));
        Assert.Equal([.. all.Where(r => r.Batch.SessionId == "a").Select(r => Describe(r.Batch))], (await store.ListAsync("a", default)).Select(Describe));
    }

    /// <summary>A key enqueued before returns the first batch, unchanged; also when it repeats within one call.</summary>
    [ConformanceFact]
    public async Task An_idempotency_key_enqueued_again_returns_the_original_unchanged()
    {
        var (_, store) = await NewAsync();
        var original = (await store.EnqueueAsync([Draft("s", "first", key: "k1")], default))[0];
        Assert.True(original.Created);
        Assert.Equal("k1", original.Batch.IdempotencyKey);

        var again = await store.EnqueueAsync([Draft("s", "second", key: "k1"), Draft("s", "new", key: "k2"), Draft("s", "third", key: "k2"), Draft("other", "fourth", key: "k1")], default);

        Assert.Equal([false, true, false, false], again.Select(r => r.Created));
        Assert.Equal(Describe(original.Batch), Describe(again[0].Batch));
        Assert.Equal(Describe(original.Batch), Describe(again[3].Batch));
        Assert.Equal(Describe(again[1].Batch), Describe(again[2].Batch));
        Assert.Equal("new", PayloadOf(again[2].Batch));
        Assert.Equal(["first", "new"], (await store.ListAsync("s", default)).Select(PayloadOf));
        Assert.Empty(await store.ListAsync("other", default));
    }

    // ---- Availability and order within a session ----

    /// <summary>A batch available later is not claimed before its time, by any claim, yet it is listed as pending.</summary>
    [ConformanceFact]
    public async Task A_batch_is_not_claimed_before_its_available_time()
    {
        var (backend, store) = await NewAsync();
        var availableAt = await backend.NowAsync() + LongTtl;
        var batch = (await store.EnqueueAsync([Draft("s", "later", availableAt: availableAt)], default))[0].Batch;

        Assert.Null(await store.ClaimSessionAsync("s", Lease("w"), 10, default));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
        Assert.Null(await store.ClaimByIdsAsync("s", [batch.BatchId], Lease("w"), default));
        var pending = Assert.Single(await store.ListPendingAsync("s", default));
        AssertWithin(pending.AvailableAt, availableAt - Rounding, availableAt, "available at");
    }

    /// <summary>Once its time has come, a delayed batch is claimed.</summary>
    [ConformanceFact]
    public async Task A_batch_is_claimed_once_its_available_time_has_come()
    {
        var (backend, store) = await NewAsync();
        var availableAt = await backend.NowAsync() + ShortTtl;
        await store.EnqueueAsync([Draft("s", "soon", availableAt: availableAt)], default);

        await backend.AdvanceAsync(Lapse);

        var claim = await store.ClaimSessionAsync("s", Lease("w"), 10, default);
        Assert.Equal(["soon"], PayloadsOf(claim));
    }

    /// <summary>A session's batches are claimed in enqueue order, at most maxBatches at a time.</summary>
    [ConformanceFact]
    public async Task A_sessions_batches_are_claimed_in_enqueue_order_at_most_max_batches_at_a_time()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("other", "x"), Draft("s", "2"), Draft("s", "3"), Draft("s", "4"), Draft("s", "5")], default);

        var first = await store.ClaimSessionAsync("s", Lease("w"), 2, default);
        Assert.Equal(["1", "2"], PayloadsOf(first));
        Assert.Equal("s", first!.SessionId);
        Assert.Equal("w", first.Owner);
        Assert.All(first.Batches, b => Assert.Equal(new ClaimLease("w", first.Fence, first.ExpiresAt), b.Lease));
        Assert.All(first.Batches, b => Assert.Equal(QueuedBatchState.Claimed, b.State));
        await CompleteAsync(store, first);

        var second = await store.ClaimSessionAsync("s", Lease("w"), 2, default);
        Assert.Equal(["3", "4"], PayloadsOf(second));
        await CompleteAsync(store, second!);

        Assert.Equal(["5"], PayloadsOf(await store.ClaimSessionAsync("s", Lease("w"), 2, default)));
    }

    /// <summary>A claim stops at the first batch that is not available: it never skips it to take a later one.</summary>
    [ConformanceFact]
    public async Task A_claim_stops_at_a_batch_that_is_not_available_and_never_skips_it()
    {
        var (backend, store) = await NewAsync();
        var later = await backend.NowAsync() + LongTtl;
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3", availableAt: later), Draft("s", "4")], default);
        await store.EnqueueAsync([Draft("r", "r1"), Draft("r", "r2"), Draft("r", "r3", availableAt: later), Draft("r", "r4")], default);

        var claim = await store.ClaimSessionAsync("s", Lease("w"), 10, default);
        var across = Assert.Single(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));

        Assert.Equal(["1", "2"], PayloadsOf(claim));
        Assert.Equal(["r1", "r2"], PayloadsOf(across));
        await CompleteAsync(store, claim!);
        await CompleteAsync(store, across);
        Assert.Null(await store.ClaimSessionAsync("s", Lease("w"), 10, default));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
    }

    /// <summary>A head that is not available blocks its session: a later ready batch of the same session is not claimed.</summary>
    [ConformanceFact]
    public async Task A_head_that_is_not_ready_is_never_skipped()
    {
        var (backend, store) = await NewAsync();
        var later = await backend.NowAsync() + LongTtl;
        var enqueued = await store.EnqueueAsync([Draft("s", "head", availableAt: later), Draft("s", "ready")], default);

        Assert.Null(await store.ClaimSessionAsync("s", Lease("w"), 10, default));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
        Assert.Null(await store.ClaimByIdsAsync("s", [enqueued[1].Batch.BatchId], Lease("w"), default));
        Assert.Equal(["head", "ready"], (await store.ListPendingAsync("s", default)).Select(PayloadOf));
    }

    /// <summary>While a session has a live claim nothing else of it is claimed, by any kind of claim.</summary>
    [ConformanceFact]
    public async Task A_session_has_at_most_one_live_claim()
    {
        var (_, store) = await NewAsync();
        var enqueued = await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3")], default);
        var held = await store.ClaimSessionAsync("s", Lease("w1"), 1, default);
        Assert.Equal(["1"], PayloadsOf(held));

        Assert.Null(await store.ClaimSessionAsync("s", Lease("w2"), 10, default));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w2"), 10, 10, default));
        Assert.Null(await store.ClaimByIdsAsync("s", [enqueued[1].Batch.BatchId], Lease("w2"), default));

        await CompleteAsync(store, held!);
        Assert.Equal(["2", "3"], PayloadsOf(await store.ClaimSessionAsync("s", Lease("w2"), 10, default)));
    }

    // ---- Across sessions ----

    /// <summary>The cross-session claim takes ready sessions oldest head first, at most maxSessions, each at most maxBatchesPerSession.</summary>
    [ConformanceFact]
    public async Task Claiming_across_sessions_takes_the_oldest_heads_first_up_to_max_sessions()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("c", "c1"), Draft("a", "a1"), Draft("b", "b1"), Draft("c", "c2"), Draft("a", "a2"), Draft("d", "d1")], default);

        var claims = await store.ClaimReadyAsync(Lease("w"), 2, 1, default);

        Assert.Equal(["c", "a"], claims.Select(c => c.SessionId));
        Assert.Equal(["c1", "a1"], claims.Select(c => PayloadOf(Assert.Single(c.Batches))));
        Assert.Equal(2, claims.Select(c => c.Fence).Distinct().Count());

        var rest = await store.ClaimReadyAsync(Lease("w"), 10, 10, default);
        Assert.Equal(["b", "d"], rest.Select(c => c.SessionId));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
    }

    /// <summary>A session whose claim is live is skipped by the cross-session claim; the next ready one is taken instead.</summary>
    [ConformanceFact]
    public async Task Claiming_across_sessions_skips_a_held_session()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("held", "h1"), Draft("held", "h2"), Draft("free", "f1"), Draft("free", "f2")], default);
        await store.ClaimSessionAsync("held", Lease("w1"), 1, default);

        var claims = await store.ClaimReadyAsync(Lease("w2"), 10, 10, default);

        var claim = Assert.Single(claims);
        Assert.Equal("free", claim.SessionId);
        Assert.Equal(["f1", "f2"], PayloadsOf(claim));
    }

    /// <summary>Every claim takes a fence greater than every earlier one.</summary>
    [ConformanceFact]
    public async Task Every_claim_takes_a_greater_fence()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("a", "1"), Draft("b", "1"), Draft("c", "1"), Draft("d", "1"), Draft("e", "1")], default);

        var fences = new List<long>();
        fences.Add((await store.ClaimSessionAsync("e", Lease("w"), 1, default))!.Fence);
        fences.AddRange((await store.ClaimReadyAsync(Lease("w"), 3, 1, default)).Select(c => c.Fence));
        var enqueued = (await store.EnqueueAsync([Draft("f", "1")], default))[0].Batch;
        fences.Add((await store.ClaimByIdsAsync("f", [enqueued.BatchId], Lease("w"), default))!.Fence);
        fences.Add((await store.ClaimSessionAsync("d", Lease("w"), 1, default))!.Fence);

        Assert.True(IsStrictlyIncreasing(fences), $"fences in the order granted: {string.Join(", ", fences)}");
    }

    // ---- Leases ----

    /// <summary>A claim's lease expires its time to live after the claim.</summary>
    [ConformanceFact]
    public async Task A_claims_lease_expires_its_time_to_live_after_the_claim()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);

        var before = await backend.NowAsync();
        var claim = await store.ClaimSessionAsync("s", Lease("w", LongTtl), 1, default);
        var after = await backend.NowAsync();

        AssertWithin(claim!.ExpiresAt, before + LongTtl, after + LongTtl, "the lease's expiry");
    }

    /// <summary>Renewing extends the lease: the batch stays held past the first expiry.</summary>
    [ConformanceFact]
    public async Task Renewing_extends_the_lease()
    {
        var (backend, store, claim) = await ClaimedAsync("w", 2);

        var before = await backend.NowAsync();
        var renewed = await store.RenewAsync(claim!.Fence, LongTtl, default);
        var after = await backend.NowAsync();
        await backend.AdvanceAsync(Lapse);

        Assert.NotNull(renewed);
        AssertWithin(renewed.Value, before + LongTtl, after + LongTtl, "the renewed expiry");
        Assert.Null(await store.ClaimSessionAsync("s", Lease("w2"), 10, default));
        Assert.Empty(await store.ListPendingAsync("s", default));
        Assert.All(await store.ListAsync("s", default), b => Assert.Equal(new ClaimLease("w", claim.Fence, renewed.Value), b.Lease));
    }

    /// <summary>Renewing a fence that holds nothing returns null.</summary>
    [ConformanceFact]
    public async Task Renewing_a_fence_that_holds_nothing_returns_null()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        await CompleteAsync(store, claim!);

        Assert.Null(await store.RenewAsync(claim!.Fence, LongTtl, default));
        Assert.Null(await store.RenewAsync(claim.Fence + 1_000, LongTtl, default));
    }

    /// <summary>A lapsed lease makes the batches claimable again, under a greater fence, pending in the meantime.</summary>
    [ConformanceFact]
    public async Task A_lapsed_lease_is_reclaimed_under_a_greater_fence()
    {
        var (backend, store, first) = await ClaimedAsync("w1", 2);

        await backend.AdvanceAsync(Lapse);

        var lapsed = await store.ListPendingAsync("s", default);
        Assert.Equal(["1", "2"], lapsed.Select(PayloadOf));
        Assert.All(lapsed, b => Assert.Equal(new ClaimLease("w1", first!.Fence, first.ExpiresAt), b.Lease));
        var second = await store.ClaimSessionAsync("s", Lease("w2"), 2, default);
        Assert.Equal(["1", "2"], PayloadsOf(second));
        Assert.True(second!.Fence > first!.Fence, $"re-claimed under fence {second.Fence}, first {first.Fence}");
        Assert.Equal("w2", second.Owner);
        // A lapsed claim ended without a completion: it counts as an attempt, so a command that kills its worker every time still reaches its attempt limit.
        Assert.All(second.Batches, b => Assert.Equal(1, b.Attempts));
        Assert.Empty(await store.ListPendingAsync("s", default));
    }

    /// <summary>After a successor re-claimed, the predecessor's complete, abandon, dead-letter and renew are fenced out and change nothing.</summary>
    [ConformanceFact]
    public async Task After_a_reclaim_the_predecessor_is_fenced_out_and_changes_nothing()
    {
        var (backend, store, predecessor) = await ClaimedAsync("old", 3);
        await backend.AdvanceAsync(Lapse);
        var successor = await store.ClaimSessionAsync("s", Lease("new"), 3, default);
        Assert.Equal(["1", "2", "3"], PayloadsOf(successor));
        var rowsBefore = await DescribeSessionAsync(store, "s");
        var summaryBefore = Counts(await store.SummarizeAsync(10, default));

        var fence = predecessor!.Fence;
        var ids = predecessor.Batches.Select(b => b.BatchId).ToList();
        Assert.Equal(
            [SettleStatus.FencedOut, SettleStatus.FencedOut, SettleStatus.FencedOut],
            await store.SettleAsync([BatchSettlement.Complete(ids[0], fence), BatchSettlement.Abandon(ids[1], fence), BatchSettlement.DeadLetter(ids[2], fence, "stale")], default));
        Assert.Equal([SettleStatus.FencedOut], await store.SettleAsync([BatchSettlement.Complete(ids[1], fence)], default));
        Assert.Null(await store.RenewAsync(fence, LongTtl, default));

        Assert.Equal(rowsBefore, await DescribeSessionAsync(store, "s"));
        Assert.Equal(summaryBefore, Counts(await store.SummarizeAsync(10, default)));
        Assert.Equal(
            [SettleStatus.Settled, SettleStatus.Settled, SettleStatus.Settled],
            await store.SettleAsync([.. successor!.Batches.Select(b => BatchSettlement.Complete(b.BatchId, successor.Fence))], default));
    }

    /// <summary>A lapsed lease that nobody re-claimed can still be settled by its owner.</summary>
    [ConformanceFact]
    public async Task A_lapsed_lease_nobody_reclaimed_can_still_be_settled_by_its_owner()
    {
        var (backend, store, claim) = await ClaimedAsync("w", 3);
        await backend.AdvanceAsync(Lapse);
        var ids = claim!.Batches.Select(b => b.BatchId).ToList();

        var results = await store.SettleAsync([BatchSettlement.Complete(ids[0], claim.Fence), BatchSettlement.Abandon(ids[1], claim.Fence), BatchSettlement.DeadLetter(ids[2], claim.Fence, "late")], default);

        Assert.Equal([SettleStatus.Settled, SettleStatus.Settled, SettleStatus.Settled], results);
        var left = Assert.Single(await store.ListAsync("s", default));
        Assert.Equal((ids[1], QueuedBatchState.Pending, 1), (left.BatchId, left.State, left.Attempts));
    }

    /// <summary>A lapsed lease nobody re-claimed can be renewed, and is live again.</summary>
    [ConformanceFact]
    public async Task A_lapsed_lease_nobody_reclaimed_can_be_renewed()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w", ShortTtl), 1, default);
        await backend.AdvanceAsync(Lapse);

        Assert.NotNull(await store.RenewAsync(claim!.Fence, LongTtl, default));
        Assert.Null(await store.ClaimSessionAsync("s", Lease("w2"), 1, default));
        Assert.Empty(await store.ListPendingAsync("s", default));
    }

    /// <summary>A lapsed claim whose first batches a successor took is not renewed: that would make two live claims of one session.</summary>
    [ConformanceFact]
    public async Task A_lapsed_claim_is_not_renewed_once_a_successor_holds_part_of_it()
    {
        var (backend, store, predecessor) = await ClaimedAsync("old", 2);
        await backend.AdvanceAsync(Lapse);
        var successor = await store.ClaimSessionAsync("s", Lease("new"), 1, default);
        Assert.Equal(["1"], PayloadsOf(successor));
        var rowsBefore = await DescribeSessionAsync(store, "s");

        Assert.Null(await store.RenewAsync(predecessor!.Fence, LongTtl, default));

        Assert.Equal(rowsBefore, await DescribeSessionAsync(store, "s"));
    }

    // ---- Settles ----

    /// <summary>Abandon puts the batch back as its session's head, with one more attempt, ready again at once without a delay.</summary>
    [ConformanceFact]
    public async Task An_abandoned_batch_is_the_sessions_head_again_with_one_more_attempt()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);

        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Abandon(claim!.Batches[0].BatchId, claim.Fence)], default));

        var pending = await store.ListPendingAsync("s", default);
        Assert.Equal(["1", "2"], pending.Select(PayloadOf));
        Assert.Equal((QueuedBatchState.Pending, 1, (ClaimLease?)null), (pending[0].State, pending[0].Attempts, pending[0].Lease));
        var again = await store.ClaimSessionAsync("s", Lease("w"), 10, default);
        Assert.Equal(["1", "2"], PayloadsOf(again));
        Assert.Equal([1, 0], again!.Batches.Select(b => b.Attempts));
    }

    /// <summary>An abandon's delay holds the batch back, and its session with it: the head is not skipped.</summary>
    [ConformanceFact]
    public async Task An_abandoned_batch_waits_out_its_delay_and_holds_its_session_back()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);

        var before = await backend.NowAsync();
        await store.SettleAsync([BatchSettlement.Abandon(claim!.Batches[0].BatchId, claim.Fence, LongTtl)], default);
        var after = await backend.NowAsync();

        var head = (await store.ListPendingAsync("s", default))[0];
        Assert.Equal(("1", 1), (PayloadOf(head), head.Attempts));
        AssertWithin(head.AvailableAt, before + LongTtl, after + LongTtl, "the abandoned batch's available time");
        Assert.Null(await store.ClaimSessionAsync("s", Lease("w"), 10, default));
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
    }

    /// <summary>
    /// An abandon whose delay reaches past any time the store can hold is settled like any other
    /// (the batch waits, listed, unclaimable) and does not fail the completion settled beside it.
    /// </summary>
    [ConformanceFact]
    public async Task An_abandon_with_a_delay_past_the_calendar_is_settled_and_fails_nothing_beside_it()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("a", "1"), Draft("b", "1")], default);
        var claims = await store.ClaimReadyAsync(Lease("w"), 2, 1, default);
        var a = claims.Single(c => c.SessionId == "a");
        var b = claims.Single(c => c.SessionId == "b");

        var results = await store.SettleAsync([BatchSettlement.Complete(a.Batches[0].BatchId, a.Fence), BatchSettlement.Abandon(b.Batches[0].BatchId, b.Fence, TimeSpan.MaxValue)], default);

        Assert.Equal([SettleStatus.Settled, SettleStatus.Settled], results);
        Assert.Empty(await store.ListAsync("a", default));
        var waiting = Assert.Single(await store.ListPendingAsync("b", default));
        Assert.Equal((QueuedBatchState.Pending, 1), (waiting.State, waiting.Attempts));
        Assert.True(waiting.AvailableAt > DateTimeOffset.UtcNow.AddYears(1), $"available at {waiting.AvailableAt:O}");
        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), 10, 10, default));
        Assert.Equal((1, 0, 1, 0), Counts(await store.SummarizeAsync(10, default)));
    }

    /// <summary>An abandon's short delay passes and the batch is claimed again first.</summary>
    [ConformanceFact]
    public async Task An_abandoned_batch_is_claimed_again_first_once_its_delay_passes()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        await store.SettleAsync([BatchSettlement.Abandon(claim!.Batches[0].BatchId, claim.Fence, ShortTtl)], default);

        await backend.AdvanceAsync(Lapse);

        var again = await store.ClaimSessionAsync("s", Lease("w"), 10, default);
        Assert.Equal(["1", "2"], PayloadsOf(again));
    }

    /// <summary>A dead letter keeps its reason, is never claimed again, and is listed in the summary.</summary>
    [ConformanceFact]
    public async Task A_dead_letter_keeps_its_reason_and_is_never_claimed_again()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "poison"), Draft("s", "next")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        var id = claim!.Batches[0].BatchId;

        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.DeadLetter(id, claim.Fence, "bad input")], default));

        Assert.Equal(["next"], (await store.ListAsync("s", default)).Select(PayloadOf));
        Assert.Equal(["next"], PayloadsOf(await store.ClaimSessionAsync("s", Lease("w"), 10, default)));
        Assert.Null(await store.CancelAsync("s", id, default));
        var summary = await store.SummarizeAsync(10, default);
        Assert.Equal(1, summary.DeadLettered);
        var dead = Assert.Single(summary.DeadLetters);
        Assert.Equal((id, "poison", QueuedBatchState.DeadLettered, "bad input"), (dead.BatchId, PayloadOf(dead), dead.State, dead.DeadLetterReason));
    }

    /// <summary>Completing twice: the second is fenced out and the count stays one.</summary>
    [ConformanceFact]
    public async Task Completing_twice_is_fenced_out_the_second_time()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        var complete = BatchSettlement.Complete(claim!.Batches[0].BatchId, claim.Fence);

        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([complete], default));
        Assert.Equal([SettleStatus.FencedOut], await store.SettleAsync([complete], default));

        Assert.Equal(1, (await store.SummarizeAsync(0, default)).Completed);
        Assert.Empty(await store.ListAsync("s", default));
        Assert.Null(await store.ClaimSessionAsync("s", Lease("w"), 1, default));
    }

    /// <summary>Many settles in one call: one result per settlement, in order, settled and fenced out mixed.</summary>
    [ConformanceFact]
    public async Task Settling_many_in_one_call_returns_one_result_per_settlement_in_order()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3"), Draft("s", "4"), Draft("t", "t1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 4, default);
        var other = await store.ClaimSessionAsync("t", Lease("w"), 1, default);
        var ids = claim!.Batches.Select(b => b.BatchId).ToList();
        var fence = claim.Fence;

        var results = await store.SettleAsync(
            [
                BatchSettlement.Complete(ids[0], fence),
                BatchSettlement.Complete(ids[1], other!.Fence),
                BatchSettlement.Abandon(ids[2], fence),
                BatchSettlement.DeadLetter(ids[3], fence, "why"),
                BatchSettlement.Complete(ids[0], fence),
                BatchSettlement.Complete("no-such-batch", fence),
                BatchSettlement.Complete(other.Batches[0].BatchId, other.Fence),
            ],
            default);

        Assert.Equal([SettleStatus.Settled, SettleStatus.FencedOut, SettleStatus.Settled, SettleStatus.Settled, SettleStatus.FencedOut, SettleStatus.FencedOut, SettleStatus.Settled], results);
        var left = await store.ListAsync("s", default);
        Assert.Equal(
            [(ids[1], QueuedBatchState.Claimed, 0), (ids[2], QueuedBatchState.Pending, 1)],
            left.Select(b => (b.BatchId, b.State, b.Attempts)));
        var summary = await store.SummarizeAsync(10, default);
        Assert.Equal((2L, 1L), (summary.Completed, summary.DeadLettered));
    }

    /// <summary>
    /// A batch id names its batch exactly: the same number written another way ("0" before it) is
    /// no batch, so a settle, a claim by ids or a cancel naming it changes nothing.
    /// </summary>
    [ConformanceFact]
    public async Task A_batch_id_written_another_way_names_no_batch()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("t", "1")], default);
        var pendingId = (await store.ListAsync("t", default))[0].BatchId;
        Assert.Null(await store.ClaimByIdsAsync("t", ["0" + pendingId], Lease("w"), default));
        Assert.Null(await store.CancelAsync("t", "0" + pendingId, default));
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        var id = claim!.Batches[0].BatchId;
        var rowsBefore = await DescribeSessionAsync(store, "s");

        Assert.Equal([SettleStatus.FencedOut, SettleStatus.FencedOut], await store.SettleAsync([BatchSettlement.Complete("0" + id, claim.Fence), BatchSettlement.Abandon("00" + id, claim.Fence)], default));

        Assert.Equal(rowsBefore, await DescribeSessionAsync(store, "s"));
        Assert.Equal(QueuedBatchState.Pending, Assert.Single(await store.ListAsync("t", default)).State);
    }

    // ---- Cancel ----

    /// <summary>Cancel removes a pending batch and returns it; the next batch is the head.</summary>
    [ConformanceFact]
    public async Task Cancelling_a_pending_batch_removes_it()
    {
        var (_, store) = await NewAsync();
        var enqueued = await store.EnqueueAsync([Draft("s", "1", key: "k"), Draft("s", "2")], default);

        var removed = await store.CancelAsync("s", enqueued[0].Batch.BatchId, default);

        Assert.Equal(Describe(enqueued[0].Batch), Describe(removed!));
        Assert.Equal(["2"], (await store.ListAsync("s", default)).Select(PayloadOf));
        Assert.Equal(["2"], PayloadsOf(await store.ClaimSessionAsync("s", Lease("w"), 10, default)));
        Assert.Null(await store.CancelAsync("s", enqueued[0].Batch.BatchId, default));
    }

    /// <summary>Cancel of a batch held by a live claim returns null and leaves it held.</summary>
    [ConformanceFact]
    public async Task Cancelling_a_batch_held_by_a_live_claim_returns_null_and_changes_nothing()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        var rowsBefore = await DescribeSessionAsync(store, "s");

        Assert.Null(await store.CancelAsync("s", claim!.Batches[0].BatchId, default));

        Assert.Equal(rowsBefore, await DescribeSessionAsync(store, "s"));
        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Complete(claim.Batches[0].BatchId, claim.Fence)], default));
    }

    /// <summary>Cancel of a batch whose lease lapsed removes it; its old claim is then fenced out.</summary>
    [ConformanceFact]
    public async Task Cancelling_a_batch_whose_lease_lapsed_removes_it()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w", ShortTtl), 1, default);
        await backend.AdvanceAsync(Lapse);

        var removed = await store.CancelAsync("s", claim!.Batches[0].BatchId, default);

        Assert.Equal(claim.Batches[0].BatchId, removed?.BatchId);
        Assert.Empty(await store.ListAsync("s", default));
        Assert.Equal([SettleStatus.FencedOut], await store.SettleAsync([BatchSettlement.Complete(claim.Batches[0].BatchId, claim.Fence)], default));
    }

    /// <summary>Cancel of a settled batch, a missing one, or one named under another session returns null.</summary>
    [ConformanceFact]
    public async Task Cancelling_a_settled_missing_or_other_sessions_batch_returns_null()
    {
        var (_, store) = await NewAsync();
        var enqueued = await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2")], default);
        var claim = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        await CompleteAsync(store, claim!);

        Assert.Null(await store.CancelAsync("s", enqueued[0].Batch.BatchId, default));
        Assert.Null(await store.CancelAsync("s", "no-such-batch", default));
        Assert.Null(await store.CancelAsync("other", enqueued[1].Batch.BatchId, default));
        Assert.Equal(["2"], (await store.ListAsync("s", default)).Select(PayloadOf));
    }

    /// <summary>A cancel racing a claim for the same batch: exactly one of them wins, and the store agrees with the winner.</summary>
    [ConformanceFact]
    public async Task A_cancel_racing_a_claim_has_exactly_one_winner()
    {
        var seed = Seeds.Next(Output);
        var random = new Random(seed);
        var (_, store) = await NewAsync();
        for (var round = 0; round < 100; round++)
        {
            var session = $"race-{round}";
            var batch = (await store.EnqueueAsync([Draft(session, "1")], default))[0].Batch;
            var cancelFirst = random.Next(2) == 0;
            var spin = random.Next(200);
            var bySession = random.Next(2) == 0;
            using var go = new ManualResetEventSlim();
            var cancelling = Task.Run(async () =>
            {
                go.Wait();
                Thread.SpinWait(cancelFirst ? 0 : spin);
                return await store.CancelAsync(session, batch.BatchId, default);
            });
            var claiming = Task.Run(async () =>
            {
                go.Wait();
                Thread.SpinWait(cancelFirst ? spin : 0);
                return bySession
                    ? await store.ClaimSessionAsync(session, Lease("w"), 1, default)
                    : (await store.ClaimReadyAsync(Lease("w"), 1, 1, default)).SingleOrDefault();
            });
            go.Set();
            var (cancelled, claimed) = (await cancelling, await claiming);

            Assert.True((cancelled is null) != (claimed is null), $"seed {seed}, round {round}: cancel {(cancelled is null ? "lost" : "won")}, claim {(claimed is null ? "lost" : "won")}");
            Assert.Equal(claimed is null ? 0 : 1, (await store.ListAsync(session, default)).Count);
            if (claimed is not null)
            {
                await CompleteAsync(store, claimed);
            }
        }
    }

    // ---- List ----

    /// <summary>List shows every unsettled batch; list pending leaves out live claims but keeps lapsed ones; settled ones are in neither.</summary>
    [ConformanceFact]
    public async Task List_shows_every_unsettled_batch_and_list_pending_leaves_out_live_claims()
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3"), Draft("s", "4"), Draft("t", "t1"), Draft("t", "t2")], default);
        var live = await store.ClaimSessionAsync("s", Lease("w"), 2, default);
        await store.SettleAsync([BatchSettlement.Complete(live!.Batches[0].BatchId, live.Fence)], default);
        var lapsing = await store.ClaimSessionAsync("t", Lease("w", ShortTtl), 1, default);
        await backend.AdvanceAsync(Lapse);

        Assert.Equal(["2", "3", "4"], (await store.ListAsync("s", default)).Select(PayloadOf));
        Assert.Equal(["3", "4"], (await store.ListPendingAsync("s", default)).Select(PayloadOf));
        var pendingT = await store.ListPendingAsync("t", default);
        Assert.Equal(["t1", "t2"], pendingT.Select(PayloadOf));
        Assert.Equal(lapsing!.Fence, pendingT[0].Lease?.Fence);
        Assert.Equal(["t1", "t2"], (await store.ListAsync("t", default)).Select(PayloadOf));
        Assert.Empty(await store.ListAsync("nobody", default));
        Assert.Empty(await store.ListPendingAsync("nobody", default));
    }

    // ---- Claim by ids ----

    /// <summary>Claim by ids takes exactly the session's next ready group, in that order.</summary>
    [ConformanceFact]
    public async Task Claiming_by_ids_takes_exactly_the_next_ready_group()
    {
        var (_, store) = await NewAsync();
        var ids = (await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3")], default)).Select(r => r.Batch.BatchId).ToList();

        var claim = await store.ClaimByIdsAsync("s", [ids[0], ids[1]], Lease("w"), default);

        Assert.Equal([ids[0], ids[1]], claim!.Batches.Select(b => b.BatchId));
        Assert.Equal(("s", "w"), (claim.SessionId, claim.Owner));
        Assert.Equal(["3"], (await store.ListPendingAsync("s", default)).Select(PayloadOf));
    }

    /// <summary>Claim by ids claims nothing when the ids skip the head, are out of order, include a held or unknown one, or a batch not yet available.</summary>
    [ConformanceFact]
    public async Task Claiming_by_ids_that_are_not_the_next_ready_group_claims_nothing()
    {
        var (backend, store) = await NewAsync();
        var later = await backend.NowAsync() + LongTtl;
        var ids = (await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2"), Draft("s", "3", availableAt: later), Draft("other", "o1")], default)).Select(r => r.Batch.BatchId).ToList();
        var rowsBefore = await DescribeSessionAsync(store, "s");

        IReadOnlyList<string>[] wrong =
        [
            [ids[1]],
            [ids[1], ids[0]],
            [ids[0], "no-such-batch"],
            ["no-such-batch"],
            [ids[0], ids[1], ids[2]],
            [ids[0], ids[0]],
            [ids[3]],
        ];
        foreach (var attempt in wrong)
        {
            Assert.True(await store.ClaimByIdsAsync("s", attempt, Lease("w"), default) is null, $"claimed by ids [{string.Join(", ", attempt)}]");
        }

        Assert.Equal(rowsBefore, await DescribeSessionAsync(store, "s"));
        Assert.Equal(0, (await store.SummarizeAsync(0, default)).Claimed);

        var held = await store.ClaimSessionAsync("s", Lease("w"), 1, default);
        Assert.Null(await store.ClaimByIdsAsync("s", [ids[1]], Lease("w2"), default));
        Assert.Null(await store.ClaimByIdsAsync("s", [ids[0]], Lease("w2"), default));
        Assert.Equal([held!.Fence], (await store.ListAsync("s", default)).Where(b => b.Lease is not null).Select(b => b.Lease!.Fence));
    }

    // ---- Summary ----

    /// <summary>The summary counts by state, ages the oldest pending batch, lists live claims and dead letters.</summary>
    [ConformanceFact]
    public async Task The_summary_counts_by_state_and_lists_live_claims_and_dead_letters()
    {
        var (backend, store) = await NewAsync();
        var empty = await store.SummarizeAsync(10, default);
        Assert.Equal((0L, 0L, 0L, 0L, (TimeSpan?)null, 0, 0), (empty.Pending, empty.Claimed, empty.Completed, empty.DeadLettered, empty.OldestPendingAge, empty.LiveClaims.Count, empty.DeadLetters.Count));

        var firstAt = await backend.NowAsync();
        await store.EnqueueAsync([Draft("a", "a1"), Draft("a", "a2"), Draft("e", "e1"), Draft("b", "b1"), Draft("c", "c1"), Draft("c", "c2")], default);
        await store.ClaimSessionAsync("e", Lease("w", ShortTtl), 1, default);
        await backend.AdvanceAsync(Lapse);
        await store.EnqueueAsync([Draft("d", "d1", availableAt: await backend.NowAsync() + LongTtl)], default);
        var live = await store.ClaimSessionAsync("a", Lease("holder"), 1, default);
        var dead = await store.ClaimSessionAsync("b", Lease("w"), 1, default);
        await store.SettleAsync([BatchSettlement.DeadLetter(dead!.Batches[0].BatchId, dead.Fence, "why")], default);
        await CompleteAsync(store, (await store.ClaimSessionAsync("c", Lease("w"), 1, default))!);

        var summary = await store.SummarizeAsync(10, default);
        var after = await backend.NowAsync();

        // Pending: a2, c2, d1 (not yet available) and e1 (its lease lapsed); claimed: a1.
        Assert.Equal((4L, 1L, 1L, 1L), (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered));
        // a2 and e1 were enqueued first, the clock moved on by Lapse after, and no longer than the whole case ago.
        var age = summary.OldestPendingAge;
        Assert.True(age >= Lapse - Rounding && age <= after - firstAt + Rounding, $"oldest pending age {age}, expected within [{Lapse}, {after - firstAt}]");
        Assert.Equal([new LiveClaimSummary("a", "holder", live!.Fence, live.ExpiresAt, 1)], summary.LiveClaims);
        var letter = Assert.Single(summary.DeadLetters);
        Assert.Equal(("b1", "why"), (PayloadOf(letter), letter.DeadLetterReason));

        var unlisted = await store.SummarizeAsync(0, default);
        Assert.Equal((4L, 1L, 1L, 1L, 0, 0), (unlisted.Pending, unlisted.Claimed, unlisted.Completed, unlisted.DeadLettered, unlisted.LiveClaims.Count, unlisted.DeadLetters.Count));
    }

    /// <summary>The summary lists live claims soonest expiry first and dead letters latest first, each at most as many as asked.</summary>
    [ConformanceFact]
    public async Task The_summary_lists_soonest_expiry_first_and_latest_dead_letter_first_up_to_the_limit()
    {
        var (_, store) = await NewAsync();
        await store.EnqueueAsync([Draft("a", "a1"), Draft("b", "b1"), Draft("c", "c1"), Draft("x", "x1"), Draft("x", "x2"), Draft("x", "x3")], default);
        var longest = await store.ClaimSessionAsync("a", Lease("w", LongTtl * 3), 1, default);
        var soonest = await store.ClaimSessionAsync("b", Lease("w", LongTtl), 1, default);
        var middle = await store.ClaimSessionAsync("c", Lease("w", LongTtl * 2), 1, default);
        foreach (var reason in new[] { "first", "second", "third" })
        {
            var claim = await store.ClaimSessionAsync("x", Lease("w"), 1, default);
            await store.SettleAsync([BatchSettlement.DeadLetter(claim!.Batches[0].BatchId, claim.Fence, reason)], default);
        }

        var summary = await store.SummarizeAsync(2, default);

        Assert.Equal([soonest!.Fence, middle!.Fence], summary.LiveClaims.Select(c => c.Fence));
        Assert.Equal(["third", "second"], summary.DeadLetters.Select(d => d.DeadLetterReason));
        Assert.Equal((3L, 3L), (summary.Claimed, summary.DeadLettered));
        Assert.NotEqual(longest!.Fence, summary.LiveClaims[^1].Fence);
    }

    // ---- Many claimers ----

    /// <summary>
    /// Eight claimers race over many sessions, each completing what it claims: every batch is
    /// completed exactly once, each session's batches are claimed in enqueue order, and a session
    /// never has two live claims at once.
    /// </summary>
    [ConformanceFact]
    public async Task Concurrent_claimers_complete_every_batch_once_in_session_order()
    {
        var seed = Seeds.Next(Output);
        var (_, store) = await NewAsync();

        await ConcurrentClaimers.RunAsync([store], claimers: 8, sessions: 50, ConcurrentBatches, seed);
    }

    /// <summary>
    /// Session ids are any text: quotes, backslashes, control characters, characters outside the
    /// basic plane, markup, very long. Each session's batches are claimed across sessions and
    /// completed one after another, in order, until nothing is left.
    /// </summary>
    [ConformanceFact]
    public async Task Session_ids_of_any_text_are_claimed_in_order_and_drain()
    {
        var (_, store) = await NewAsync();
        string[] sessions = ["plain", "quo\"te\\back", "ctl\u0001\u001f\t\n", "emoji \U0001F600 end", "<b>&'+</b>", "caf\u00e9 \u4e2d", new string('x', 5_000) + "\U0001F600"];
        foreach (var session in sessions)
        {
            await store.EnqueueAsync([Draft(session, "1"), Draft(session, "2")], default);
        }

        foreach (var expected in new[] { "1", "2" })
        {
            var claims = await store.ClaimReadyAsync(Lease("w"), sessions.Length + 1, 1, default);
            Assert.Equal(sessions.Order(StringComparer.Ordinal), claims.Select(c => c.SessionId).Order(StringComparer.Ordinal));
            Assert.All(claims, c => Assert.Equal([expected], PayloadsOf(c)));
            foreach (var claim in claims)
            {
                await CompleteAsync(store, claim);
            }
        }

        Assert.Empty(await store.ClaimReadyAsync(Lease("w"), sessions.Length + 1, 1, default));
        var summary = await store.SummarizeAsync(0, default);
        Assert.Equal((0, 0, 2L * sessions.Length, 0), Counts(summary));
    }

    // ---- Helpers ----

    /// <summary>A fresh store holding batches "1" to "<paramref name="batches"/>" of session "s", all claimed by <paramref name="worker"/> under a <see cref="ShortTtl"/> lease.</summary>
    private async Task<(QueuedWorkStoreBackend Backend, IQueuedWorkStore Store, QueuedWorkClaim? Claim)> ClaimedAsync(string worker, int batches)
    {
        var (backend, store) = await NewAsync();
        await store.EnqueueAsync([.. Enumerable.Range(1, batches).Select(i => Draft("s", i.ToString(CultureInfo.InvariantCulture)))], default);
        return (backend, store, await store.ClaimSessionAsync("s", Lease(worker, ShortTtl), batches, default));
    }

    /// <summary>A fresh backend, disposed with the test.</summary>
    private async Task<(QueuedWorkStoreBackend Backend, IQueuedWorkStore Store)> NewAsync()
    {
        var backend = await CreateBackendAsync();
        Track(backend);
        return (backend, backend.Store);
    }

    private static QueuedBatchDraft Draft(string session, string payload, string? key = null, DateTimeOffset? availableAt = null) =>
        new() { SessionId = session, Payload = Encoding.UTF8.GetBytes(payload), IdempotencyKey = key, AvailableAt = availableAt };

    private static LeaseRequest Lease(string owner, TimeSpan? timeToLive = null) => new() { Owner = owner, TimeToLive = timeToLive ?? LongTtl };

    private static string PayloadOf(QueuedBatch batch) => Encoding.UTF8.GetString(batch.Payload.Span);

    private static List<string> PayloadsOf(QueuedWorkClaim? claim)
    {
        Assert.NotNull(claim);
        Assert.NotEmpty(claim.Batches);
        return [.. claim.Batches.Select(PayloadOf)];
    }

    private static async Task CompleteAsync(IQueuedWorkStore store, QueuedWorkClaim claim)
    {
        var results = await store.SettleAsync([.. claim.Batches.Select(b => BatchSettlement.Complete(b.BatchId, claim.Fence))], default);
        Assert.All(results, r => Assert.Equal(SettleStatus.Settled, r));
    }

    // Every field, the payload as text: two reads of one row compare equal whatever the backend's byte buffers.
    private static string Describe(QueuedBatch b) =>
        $"{b.BatchId} {b.SessionId} #{b.Sequence} '{PayloadOf(b)}' key={b.IdempotencyKey} enq={b.EnqueuedAt:O} avail={b.AvailableAt:O} attempts={b.Attempts} {b.State} lease={b.Lease} reason={b.DeadLetterReason}";

    private static async Task<List<string>> DescribeSessionAsync(IQueuedWorkStore store, string session) =>
        [.. (await store.ListAsync(session, default)).Select(Describe)];

    private static (long, long, long, long) Counts(QueueSummary summary) => (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered);

    private static bool IsStrictlyIncreasing(IEnumerable<long> values)
    {
        long? last = null;
        foreach (var value in values)
        {
            if (last >= value)
            {
                return false;
            }

            last = value;
        }

        return true;
    }

    private static void AssertWithin(DateTimeOffset actual, DateTimeOffset from, DateTimeOffset to, string what) =>
        Assert.True(actual >= from - Rounding && actual <= to + Rounding, $"{what} {actual:O}, expected within [{from:O}, {to:O}]");
}
