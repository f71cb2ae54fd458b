using System.Collections.Concurrent;
using System.Text;

namespace Pipeline.Storage.Postgres.Tests;

/// <summary>What the PostgreSQL store adds to the contract: the database's clock, many workers on one database, a server that restarts.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresQueuedWorkStoreTests(PostgresServerFixture postgres, ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Enqueued_batches_are_claimed_in_order_and_completed_once()
    {
        await using var store = await PostgresStores.OpenFreshAsync(postgres);
        var enqueued = await store.EnqueueAsync([PostgresStores.Draft("s", "a"), PostgresStores.Draft("s", "b"), PostgresStores.Draft("t", "c")], default);
        Assert.All(enqueued, r => Assert.True(r.Created));

        var claims = await store.ClaimReadyAsync(PostgresStores.Lease("w"), 10, 10, default);
        Assert.Equal(2, claims.Count);
        Assert.Equal(["a", "b"], claims[0].Batches.Select(b => b.Text()));
        Assert.Equal(["c"], claims[1].Batches.Select(b => b.Text()));

        var settled = await store.SettleAsync([.. claims.SelectMany(c => c.Batches.Select(b => BatchSettlement.Complete(b.BatchId, c.Fence)))], default);
        Assert.All(settled, s => Assert.Equal(SettleStatus.Settled, s));
        var again = await store.SettleAsync([BatchSettlement.Complete(claims[0].Batches[0].BatchId, claims[0].Fence)], default);
        Assert.Equal([SettleStatus.FencedOut], again);

        var summary = await store.SummarizeAsync(10, default);
        Assert.Equal(3, summary.Completed);
        Assert.Equal(0, summary.Pending);
        Assert.Empty(await store.ClaimReadyAsync(PostgresStores.Lease("w"), 10, 10, default));
    }

    [Fact]
    public async Task Leases_and_availability_run_on_the_database_clock_not_the_workers()
    {
        // The database runs an hour ahead of this worker, and only the test moves it on.
        var clock = await DatabaseClock.InstallAsync(await postgres.CreateDatabaseAsync(), TimeSpan.FromHours(1));
        await using var store = await PostgresStores.OpenAsync(clock.ConnectionString);
        var databaseNow = await clock.NowAsync();
        await store.EnqueueAsync([PostgresStores.Draft("s", "a"), PostgresStores.Draft("later", "b", availableAt: databaseNow + TimeSpan.FromSeconds(10))], default);

        var workerNow = DateTimeOffset.UtcNow;
        var first = await store.ClaimSessionAsync("s", PostgresStores.Lease("w1", TimeSpan.FromSeconds(30)), 1, default);
        Assert.NotNull(first);
        Assert.InRange(first.ExpiresAt - workerNow, TimeSpan.FromHours(1) + TimeSpan.FromSeconds(29), TimeSpan.FromHours(1) + TimeSpan.FromSeconds(40));
        Assert.Null(await store.ClaimSessionAsync("later", PostgresStores.Lease("w1"), 1, default));

        await clock.AdvanceAsync(TimeSpan.FromSeconds(20));
        Assert.Null(await store.ClaimSessionAsync("s", PostgresStores.Lease("w2"), 1, default));
        Assert.NotNull(await store.ClaimSessionAsync("later", PostgresStores.Lease("w2"), 1, default));

        await clock.AdvanceAsync(TimeSpan.FromSeconds(11));
        var successor = await store.ClaimSessionAsync("s", PostgresStores.Lease("w2"), 1, default);
        Assert.NotNull(successor);
        Assert.True(successor.Fence > first.Fence);
        Assert.Equal([SettleStatus.FencedOut], await store.SettleAsync([BatchSettlement.Complete(first.Batches[0].BatchId, first.Fence)], default));
        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Complete(successor.Batches[0].BatchId, successor.Fence)], default));
    }

    [Fact]
    public async Task Eight_claimers_on_two_stores_over_one_database_complete_20000_batches_once_each_in_session_order()
    {
        var seed = Seeds.Next(output);
        var database = await postgres.CreateDatabaseAsync();
        await using var first = await PostgresStores.OpenAsync(database);
        await using var second = await PostgresStores.OpenAsync(database);

        await ConcurrentClaimers.RunAsync([first, second], claimers: 8, sessions: 1_000, batches: 20_000, seed);
    }

    [Fact]
    public async Task A_claim_whose_session_changed_after_its_snapshot_leaves_the_session_for_the_next_claim()
    {
        // A claim across sessions reads the sessions ready in its snapshot, then locks them. Here the
        // lapsed owner's late completion of the head commits in between (the claim is held after its
        // snapshot is taken, before it locks): the session is still ready (its next batch, still
        // held by the lapsed claim), but the claim's view of its batches is older than the row it
        // locked, so it must change nothing there: neither claim the completed head nor count the
        // lapsed claim's attempt twice.
        var clock = await DatabaseClock.InstallAsync(await postgres.CreateDatabaseAsync(), TimeSpan.Zero);
        await using var store = await PostgresStores.OpenAsync(clock.ConnectionString);
        await using var successorStore = await PostgresStores.OpenAsync(clock.ConnectionString);
        await store.EnqueueAsync([PostgresStores.Draft("s", "a"), PostgresStores.Draft("s", "b")], default);
        var lapsed = await store.ClaimSessionAsync("s", PostgresStores.Lease("late", TimeSpan.FromSeconds(10)), 2, default);
        Assert.NotNull(lapsed);
        await clock.AdvanceAsync(TimeSpan.FromSeconds(11));

        await clock.StallAsync(TimeSpan.FromSeconds(2));
        var successor = successorStore.ClaimReadyAsync(PostgresStores.Lease("successor"), 10, 2, default).AsTask();
        await Eventually.WaitForAsync(clock.StalledAsync, Bound, "the successor's claim holding after its snapshot");
        await clock.StallAsync(TimeSpan.Zero);
        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Complete(lapsed.Batches[0].BatchId, lapsed.Fence)], default));

        var claimed = (await successor).SelectMany(c => c.Batches).ToList();
        Assert.DoesNotContain("a", claimed.Select(b => b.Text()));
        if (claimed.Count == 0)
        {
            claimed = [.. (await successorStore.ClaimReadyAsync(PostgresStores.Lease("successor"), 10, 2, default)).SelectMany(c => c.Batches)];
        }

        // b's one lapsed claim ended without a completion: one attempt.
        Assert.Equal([("b", 1)], claimed.Select(b => (b.Text(), b.Attempts)));
    }

    [Fact]
    public async Task A_restarted_server_fails_calls_transiently_and_then_the_run_finishes_with_nothing_lost_or_claimed_twice()
    {
        // Half the batches first, the other half once the server is back: the claimers keep calling
        // (claiming, or polling an empty queue) while it is down, however fast the first half went.
        const int Batches = 4_000;
        var database = await postgres.CreateDatabaseAsync();
        await using var store = await PostgresStores.OpenAsync(database);
        QueuedBatchDraft[] Half(int from) => [.. Enumerable.Range(from, Batches / 2).Select(i => PostgresStores.Draft($"s{i % 100}", i.ToString(System.Globalization.CultureInfo.InvariantCulture)))];
        await store.EnqueueAsync(Half(0), default);

        var received = new ConcurrentDictionary<long, int>();
        var transient = 0;
        var completed = 0;
        using var deadline = new CancellationTokenSource(Bound * 2);

        // Retries what the store calls transient; anything else fails the test.
        async Task<T> Retry<T>(Func<Task<T>> call)
        {
            while (true)
            {
                try
                {
                    return await call();
                }
                catch (Exception ex) when (store.IsTransient(ex) && !deadline.IsCancellationRequested)
                {
                    Interlocked.Increment(ref transient);
                    await Task.Delay(50, deadline.Token);
                }
            }
        }

        // Longer than the server is down however loaded the machine, so no lease lapses while its
        // holder waits to settle (that would be the at-least-once window, not a fault). A claim whose
        // commit made it but whose reply did not stays held until its lease lapses: the bound allows it.
        var lease = PostgresStores.Lease("worker", TimeSpan.FromSeconds(60));
        var claimers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (Volatile.Read(ref completed) < Batches)
            {
                var claims = await Retry(async () => await store.ClaimReadyAsync(lease, 16, 1, deadline.Token));
                if (claims.Count == 0)
                {
                    await Task.Delay(5, deadline.Token);
                    continue;
                }

                foreach (var batch in claims.SelectMany(c => c.Batches))
                {
                    received.AddOrUpdate(batch.Sequence, 1, (_, n) => n + 1);
                }

                var settlements = claims.SelectMany(c => c.Batches.Select(b => BatchSettlement.Complete(b.BatchId, c.Fence))).ToList();
                var failedBefore = Volatile.Read(ref transient);
                var statuses = await Retry(async () => await store.SettleAsync(settlements, deadline.Token));

                // A retried settle may find its first attempt committed (reply lost): fenced out then, and done.
                Assert.True(statuses.All(s => s == SettleStatus.Settled) || Volatile.Read(ref transient) > failedBefore, "a settle was fenced out without a failure before it");
                Interlocked.Add(ref completed, statuses.Count);
            }
        })).ToList();

        await Eventually.WaitFor(() => Volatile.Read(ref completed) >= Batches / 4, Bound, "a quarter done before the stop");
        await postgres.StopAsync();
        try
        {
            var down = await Assert.ThrowsAnyAsync<Exception>(async () => await store.SummarizeAsync(0, default));
            Assert.True(store.IsTransient(down), $"not transient while the server is down: {down}");
            await Eventually.WaitFor(() => Volatile.Read(ref transient) > 0, Bound, "the claimers met the stopped server");
        }
        finally
        {
            await postgres.StartAsync();
        }

        await Retry(async () => await store.EnqueueAsync(Half(Batches / 2), default));
        await Eventually.WaitFor(() => Volatile.Read(ref completed) >= Batches * 5 / 8, Bound, "some of the second half done before the restart");
        var beforeRestart = Volatile.Read(ref transient);
        await postgres.RestartAsync();
        await Task.WhenAll(claimers);
        output.WriteLine($"transient failures: {transient} ({transient - beforeRestart} around the restart)");

        var twice = received.Where(r => r.Value != 1).Select(r => r.Key).ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} batches handed out more than once, e.g. {string.Join(", ", twice.Take(5))}");
        var summary = await Retry(async () => await store.SummarizeAsync(0, default));
        Assert.Equal((Batches, 0L, 0L, Batches), (summary.Completed, summary.Pending, summary.Claimed, received.Count));
    }

    [Fact]
    public async Task An_enqueue_of_many_is_idempotent_on_keys_within_the_call_across_calls_and_across_stores()
    {
        var database = await postgres.CreateDatabaseAsync();
        await using var first = await PostgresStores.OpenAsync(database);
        await using var second = await PostgresStores.OpenAsync(database);

        var results = await first.EnqueueAsync([PostgresStores.Draft("s", "a", key: "k1"), PostgresStores.Draft("s", "b"), PostgresStores.Draft("t", "again", key: "k1")], default);
        Assert.Equal([true, true, false], results.Select(r => r.Created));
        Assert.Equal(results[0].Batch.BatchId, results[2].Batch.BatchId);
        Assert.Equal("a", results[2].Batch.Text());

        // Both stores at once, the same keys: each key stored once, and both callers told the same batch.
        var keyed = Enumerable.Range(0, 500).Select(i => PostgresStores.Draft($"s{i % 7}", $"p{i}", key: $"key-{i}")).ToArray();
        var racing = await Task.WhenAll(first.EnqueueAsync(keyed, default).AsTask(), second.EnqueueAsync(keyed, default).AsTask());
        for (var i = 0; i < keyed.Length; i++)
        {
            Assert.Equal(racing[0][i].Batch.BatchId, racing[1][i].Batch.BatchId);
            Assert.True(racing[0][i].Created ^ racing[1][i].Created, $"key-{i} created by both or by neither");
        }

        var stored = 0;
        for (var s = 0; s < 7; s++)
        {
            stored += (await first.ListAsync($"s{s}", default)).Count;
        }

        Assert.Equal(500, stored);
        Assert.Equal(["a", "b"], (await first.ListAsync("s", default)).Select(b => b.Text()));
        Assert.Empty(await first.ListAsync("t", default));
    }

    [Fact]
    public async Task A_claim_by_ids_takes_exactly_the_next_ready_batches_or_nothing()
    {
        await using var store = await PostgresStores.OpenFreshAsync(postgres);
        var ids = (await store.EnqueueAsync([PostgresStores.Draft("s", "a"), PostgresStores.Draft("s", "b"), PostgresStores.Draft("s", "c")], default)).Select(r => r.Batch.BatchId).ToList();

        Assert.Null(await store.ClaimByIdsAsync("s", [ids[1]], PostgresStores.Lease("w"), default));
        Assert.Null(await store.ClaimByIdsAsync("s", [ids[0], ids[2]], PostgresStores.Lease("w"), default));
        Assert.Null(await store.ClaimByIdsAsync("s", [ids[1], ids[0]], PostgresStores.Lease("w"), default));
        Assert.Null(await store.ClaimByIdsAsync("s", ["not-an-id"], PostgresStores.Lease("w"), default));
        Assert.Equal(3, (await store.ListPendingAsync("s", default)).Count);

        var claim = await store.ClaimByIdsAsync("s", [ids[0], ids[1]], PostgresStores.Lease("w"), default);
        Assert.NotNull(claim);
        Assert.Equal(["a", "b"], claim.Batches.Select(b => b.Text()));
        Assert.Equal([ids[2]], (await store.ListPendingAsync("s", default)).Select(b => b.BatchId));
    }

    [Fact]
    public async Task An_abandoned_batch_of_a_claim_waits_behind_the_claims_other_batches_and_is_fenced_out_of_it()
    {
        var clock = await DatabaseClock.InstallAsync(await postgres.CreateDatabaseAsync(), TimeSpan.Zero);
        await using var store = await PostgresStores.OpenAsync(clock.ConnectionString);
        await store.EnqueueAsync([PostgresStores.Draft("s", "a"), PostgresStores.Draft("s", "b"), PostgresStores.Draft("s", "c")], default);
        var claim = await store.ClaimSessionAsync("s", PostgresStores.Lease("w"), 2, default);
        Assert.NotNull(claim);

        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Abandon(claim.Batches[0].BatchId, claim.Fence)], default));
        Assert.Equal([SettleStatus.FencedOut], await store.SettleAsync([BatchSettlement.Complete(claim.Batches[0].BatchId, claim.Fence)], default));

        // b is still held: nothing of the session can be claimed, though a is ready again.
        Assert.Null(await store.ClaimSessionAsync("s", PostgresStores.Lease("w2"), 3, default));
        var listed = await store.ListAsync("s", default);
        Assert.Equal([(QueuedBatchState.Pending, 1, false), (QueuedBatchState.Claimed, 0, true), (QueuedBatchState.Pending, 0, false)], listed.Select(b => (b.State, b.Attempts, b.Lease is not null)));
        Assert.Equal(["a", "c"], (await store.ListPendingAsync("s", default)).Select(b => b.Text()));

        Assert.Equal([SettleStatus.Settled], await store.SettleAsync([BatchSettlement.Complete(claim.Batches[1].BatchId, claim.Fence)], default));
        var next = await store.ClaimSessionAsync("s", PostgresStores.Lease("w2"), 3, default);
        Assert.NotNull(next);
        Assert.Equal(["a", "c"], next.Batches.Select(b => b.Text()));
        Assert.Equal(1, next.Batches[0].Attempts);
    }

    [Fact]
    public async Task A_payload_comes_back_byte_for_byte()
    {
        await using var store = await PostgresStores.OpenFreshAsync(postgres);
        var payload = new byte[70_000];
        new Random(Seeds.Or(16, output)).NextBytes(payload);
        await store.EnqueueAsync([new QueuedBatchDraft { SessionId = "s", Payload = payload }, PostgresStores.Draft("s", "ünïcödé ✓")], default);

        var claim = await store.ClaimSessionAsync("s", PostgresStores.Lease("w"), 2, default);
        Assert.NotNull(claim);
        Assert.Equal(payload, claim.Batches[0].Payload.ToArray());
        Assert.Equal("ünïcödé ✓", Encoding.UTF8.GetString(claim.Batches[1].Payload.Span));
    }
}
