using Pipeline.Storage;

namespace Pipeline.Bench.Stores;

/// <summary>
/// A store that counts the calls made to it and the batches they carried: how many round trips a
/// run took, and how full they were (<c>--quick-store</c> prints it under the pipeline's line).
/// </summary>
internal sealed class CountingStore(IQueuedWorkStore inner) : IQueuedWorkStore
{
    private long _claimCalls, _claimed, _emptyClaims, _settleCalls, _settled, _renewals, _summaries, _claimTicks, _settleTicks;

    public IQueuedWorkStore Inner => inner;

    private static double Ms(long ticks) => ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency;

    public override string ToString() => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"claims {_claimCalls:N0} ({_emptyClaims:N0} empty, {(double)_claimed / Math.Max(1, _claimCalls - _emptyClaims):0.0} batches per non-empty, {Ms(_claimTicks):N0} ms in them), settles {_settleCalls:N0} ({(double)_settled / Math.Max(1, _settleCalls):0.0} per call, {Ms(_settleTicks):N0} ms in them), renewals {_renewals:N0}, summaries {_summaries:N0}");

    public async ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var claims = await inner.ClaimReadyAsync(lease, maxSessions, maxBatchesPerSession, cancellationToken);
        Interlocked.Add(ref _claimTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);
        Interlocked.Increment(ref _claimCalls);
        Interlocked.Add(ref _claimed, claims.Sum(c => c.Batches.Count));
        if (claims.Count == 0)
        {
            Interlocked.Increment(ref _emptyClaims);
        }

        return claims;
    }

    public async ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _settleCalls);
        Interlocked.Add(ref _settled, settlements.Count);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var results = await inner.SettleAsync(settlements, cancellationToken);
        Interlocked.Add(ref _settleTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);
        return results;
    }

    public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _renewals);
        return inner.RenewAsync(fence, timeToLive, cancellationToken);
    }

    public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _summaries);
        return inner.SummarizeAsync(maxListed, cancellationToken);
    }

    public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken) => inner.EnqueueAsync(drafts, cancellationToken);

    public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken) => inner.ClaimSessionAsync(sessionId, lease, maxBatches, cancellationToken);

    public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken) => inner.ClaimByIdsAsync(sessionId, batchIds, lease, cancellationToken);

    public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken) => inner.CancelAsync(sessionId, batchId, cancellationToken);

    public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) => inner.ListAsync(sessionId, cancellationToken);

    public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) => inner.ListPendingAsync(sessionId, cancellationToken);

    public bool IsTransient(Exception exception) => inner.IsTransient(exception);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
