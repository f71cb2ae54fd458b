using System.Diagnostics;
using System.Text;
using Pipeline.Storage.Sqlite.Tests.Support;

namespace Pipeline.Storage.Sqlite.Tests;

/// <summary>
/// Volume through the store as the store source drives it (many sessions per claim, many settles
/// per call), checked for loss and doubles; the rates go to the test output as a sanity figure
/// (the bench project measures for real; a loaded machine must not fail a test on speed).
/// </summary>
public sealed class SqliteThroughputTests(ITestOutputHelper output)
{
    private const int Batches = 20_000;

    [Theory]
    [InlineData(SqliteDurability.Full)]
    [InlineData(SqliteDurability.Normal)]
    public async Task Twenty_thousand_batches_are_enqueued_and_each_claimed_and_completed_once(SqliteDurability durability)
    {
        using var database = new TempDatabase();
        var options = database.Options with { Durability = durability };
        var payload = Encoding.UTF8.GetBytes("""{"command_id":"c","execution_id":"e","step":0,"tool_kind":"noop","input":{}}""");

        // Enqueue in one call, into a store of its own.
        await using (var one = await SqliteQueuedWorkStore.OpenAsync(options with { Path = Path.Combine(database.Folder, "one.db") }))
        {
            var drafts = Enumerable.Range(0, Batches).Select(i => new QueuedBatchDraft { SessionId = $"e{i}", Payload = payload }).ToList();
            var started = Stopwatch.GetTimestamp();
            var results = await one.EnqueueAsync(drafts, default);
            Report("enqueue, one call of 20,000", Batches, Stopwatch.GetElapsedTime(started));
            Assert.Equal(Batches, results.Count(r => r.Created));
        }

        await using var store = await SqliteQueuedWorkStore.OpenAsync(options);
        var inHundreds = Stopwatch.GetTimestamp();
        foreach (var chunk in Enumerable.Range(0, Batches).Chunk(100))
        {
            await store.EnqueueAsync([.. chunk.Select(i => new QueuedBatchDraft { SessionId = $"e{i}", Payload = payload })], default);
        }

        Report("enqueue, calls of 100", Batches, Stopwatch.GetElapsedTime(inHundreds));

        // Claim 128 sessions of one batch each, complete the 128 in one settle call, until drained.
        var lease = new LeaseRequest { Owner = "bench", TimeToLive = TimeSpan.FromMinutes(5) };
        var completed = new HashSet<string>(StringComparer.Ordinal);
        var draining = Stopwatch.GetTimestamp();
        while (await store.ClaimReadyAsync(lease, 128, 1, default) is { Count: > 0 } claims)
        {
            var results = await store.SettleAsync([.. claims.Select(c => BatchSettlement.Complete(c.Batches[0].BatchId, c.Fence))], default);
            Assert.All(results, r => Assert.Equal(SettleStatus.Settled, r));
            foreach (var claim in claims)
            {
                Assert.True(completed.Add(claim.Batches[0].BatchId), $"{claim.Batches[0].BatchId} claimed twice");
            }
        }

        Report("claim + complete, 128 sessions a claim, 128 settles a call", completed.Count, Stopwatch.GetElapsedTime(draining));
        Assert.Equal(Batches, completed.Count);
        var summary = await store.SummarizeAsync(0, default);
        Assert.Equal((0L, 0L, (long)Batches), (summary.Pending, summary.Claimed, summary.Completed));
    }

    private void Report(string what, int count, TimeSpan took) =>
        output.WriteLine($"{what}: {count:N0} in {took.TotalMilliseconds:N0} ms = {count / took.TotalSeconds:N0}/s");
}
