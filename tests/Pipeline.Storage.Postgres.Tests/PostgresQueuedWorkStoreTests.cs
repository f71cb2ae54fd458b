namespace Pipeline.Storage.Postgres.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgresQueuedWorkStoreTests(PostgresServerFixture postgres)
{
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
}
