using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Pipeline.Storage;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// Claimers racing over one store (or several stores over the same data: two processes on one
/// file), each completing what it claims, and what must hold after: every batch completed exactly
/// once, each session's batches claimed in enqueue order, never two live claims of one session.
/// </summary>
public static class ConcurrentClaimers
{
    /// <summary>
    /// Enqueues <paramref name="batches"/> batches over <paramref name="sessions"/> sessions (through
    /// the first store), then runs <paramref name="claimers"/> claimers (round robin over
    /// <paramref name="stores"/>) until all are completed, and asserts the three rules. Every choice
    /// (sessions, claim sizes, which kind of claim) comes from <paramref name="seed"/>.
    /// </summary>
    public static async Task RunAsync(IReadOnlyList<IQueuedWorkStore> stores, int claimers, int sessions, int batches, int seed)
    {
        ArgumentNullException.ThrowIfNull(stores);
        var random = new Random(seed);
        var drafts = Enumerable.Range(0, batches)
            .Select(i => new QueuedBatchDraft { SessionId = $"s{random.Next(sessions)}", Payload = Encoding.UTF8.GetBytes(i.ToString(CultureInfo.InvariantCulture)) })
            .ToList();
        var enqueued = new List<QueuedBatch>();
        foreach (var chunk in drafts.Chunk(100))
        {
            enqueued.AddRange((await stores[0].EnqueueAsync(chunk, default)).Select(r => r.Batch));
        }

        var claimedInOrder = new ConcurrentDictionary<string, List<long>>();
        var holding = new ConcurrentDictionary<string, long>();
        var settled = new ConcurrentDictionary<string, int>();
        var violations = new ConcurrentQueue<string>();
        var completed = 0;
        using var giveUp = new CancellationTokenSource();
        var claimerSeeds = Enumerable.Range(0, claimers).Select(_ => random.Next()).ToList();
        var claiming = claimerSeeds.Select((claimerSeed, index) => Task.Run(async () =>
        {
            var own = new Random(claimerSeed);
            var store = stores[index % stores.Count];
            var lease = new LeaseRequest { Owner = $"claimer-{index}", TimeToLive = TimeSpan.FromMinutes(5) };
            // A claimer that failed ends them all: the others would wait for its batches forever.
            while (Volatile.Read(ref completed) < enqueued.Count && !giveUp.IsCancellationRequested)
            {
                IReadOnlyList<QueuedWorkClaim> claims = own.Next(3) == 0
                    ? [.. new[] { await store.ClaimSessionAsync($"s{own.Next(sessions)}", lease, own.Next(1, 8), default) }.OfType<QueuedWorkClaim>()]
                    : await store.ClaimReadyAsync(lease, own.Next(1, 6), own.Next(1, 8), default);
                if (claims.Count == 0)
                {
                    await Task.Delay(1);
                    continue;
                }

                foreach (var claim in claims)
                {
                    if (!holding.TryAdd(claim.SessionId, claim.Fence))
                    {
                        violations.Enqueue($"{claim.SessionId}: claimed under {claim.Fence} while {holding.GetValueOrDefault(claim.SessionId)} was live");
                    }

                    var log = claimedInOrder.GetOrAdd(claim.SessionId, _ => []);
                    lock (log)
                    {
                        log.AddRange(claim.Batches.Select(b => b.Sequence));
                    }

                    // Let go before completing: once completed, another claimer may rightly take the session.
                    holding.TryRemove(new KeyValuePair<string, long>(claim.SessionId, claim.Fence));
                }

                var held = claims.SelectMany(c => c.Batches.Select(b => (Batch: b, c.Fence))).ToList();
                var results = await store.SettleAsync([.. held.Select(h => BatchSettlement.Complete(h.Batch.BatchId, h.Fence))], default);
                var settledIds = held.Zip(results).Where(p => p.Second == SettleStatus.Settled).Select(p => p.First.Batch.BatchId).ToList();
                foreach (var id in settledIds)
                {
                    settled.AddOrUpdate(id, 1, (_, n) => n + 1);
                }

                if (settledIds.Count != results.Count)
                {
                    violations.Enqueue($"{results.Count - settledIds.Count} completions of a live claim fenced out");
                }

                Interlocked.Add(ref completed, settledIds.Count);
            }
        }).ContinueWith(
            claimer =>
            {
                if (!claimer.IsCompletedSuccessfully)
                {
                    giveUp.Cancel();
                }

                return claimer;
            },
            TaskScheduler.Default).Unwrap()).ToList();

        var all = Task.WhenAll(claiming);
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromMinutes(3))) != all)
        {
            var stuck = await stores[0].SummarizeAsync(10, default);
            var left = enqueued.Where(b => !settled.ContainsKey(b.BatchId)).GroupBy(b => b.SessionId).Take(5)
                .Select(g => $"{g.Key}: [{string.Join(", ", g.Select(b => b.Sequence))}]");
            Assert.Fail($"seed {seed}: not done after 3 min: {Volatile.Read(ref completed)} of {enqueued.Count} completed; store: {stuck.Pending} pending, {stuck.Claimed} claimed, {stuck.Completed} completed, live claims [{string.Join(", ", stuck.LiveClaims.Take(5).Select(c => $"{c.SessionId} by {c.Owner} fence {c.Fence} holding {c.Batches}"))}]; left (first 5 sessions): {string.Join("; ", left)}; claimers: {string.Join("; ", claiming.Select((t, i) => $"{i} {t.Status} {t.Exception?.GetBaseException().Message}"))}");
        }

        await all;

        Assert.True(violations.IsEmpty, $"seed {seed}: {string.Join("; ", violations.Take(10))}");
        var twice = settled.Where(p => p.Value != 1).Select(p => p.Key).ToList();
        var never = enqueued.Where(b => !settled.ContainsKey(b.BatchId)).Select(b => b.BatchId).ToList();
        Assert.True(twice.Count == 0 && never.Count == 0, $"seed {seed}: completed more than once [{string.Join(", ", twice.Take(10))}], never [{string.Join(", ", never.Take(10))}]");
        foreach (var session in enqueued.GroupBy(b => b.SessionId))
        {
            Assert.True(session.Select(b => b.Sequence).SequenceEqual(claimedInOrder[session.Key]), $"seed {seed}: session {session.Key} claimed in the order [{string.Join(", ", claimedInOrder[session.Key])}], enqueued [{string.Join(", ", session.Select(b => b.Sequence))}]");
        }

        foreach (var store in stores)
        {
            var summary = await store.SummarizeAsync(0, default);
            Assert.Equal(((long)enqueued.Count, 0L, 0L), (summary.Completed, summary.Pending, summary.Claimed));
        }
    }
}
