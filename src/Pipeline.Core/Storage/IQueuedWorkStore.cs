namespace Pipeline.Storage;

/// <summary>
/// Durable queued work (the seed's <c>QueuedWorkStore</c>): batches enqueued into sessions, claimed
/// in order under a lease with an owner and a fencing token, renewed, settled one batch at a time.
/// </summary>
/// <remarks>
/// <para><b>Order.</b> The batches of a session are claimed in enqueue order: a claim takes the
/// session's earliest ready batch and the ready batches right after it, and never skips a head that
/// is not ready (not yet available, or held). A session has at most one live claim: while any of
/// its batches is held under a lease that has not lapsed, nothing else of the session is claimed.</para>
/// <para><b>Fence.</b> Every claim takes a new fencing token, greater than every token the store has
/// handed out before. A settle or renewal names the token it was claimed under and changes nothing
/// when the batch is no longer held under that token (a successor re-claimed it after the lease
/// lapsed, or it was cancelled): the result says <see cref="SettleStatus.FencedOut"/>. A lapsed
/// lease that nobody re-claimed yet can still be settled by its owner.</para>
/// <para><b>Time.</b> Leases and availability are measured on the store's clock: the database's
/// for PostgreSQL (<c>now()</c>), the injected <see cref="TimeProvider"/> otherwise. A lease is
/// live while its expiry is later than now, and lapsed from its expiry on; a batch is available
/// from its <see cref="QueuedBatch.AvailableAt"/> on.</para>
/// <para><b>Ids.</b> <see cref="QueuedBatch.BatchId"/> is the store's own and opaque to callers; an
/// id the store never handed out is simply not found (a null or FencedOut result, never an exception).</para>
/// <para>Every method is safe to call concurrently. A failure to reach the store is an exception
/// (the caller retries); a lost race is a result, never an exception.</para>
/// </remarks>
public interface IQueuedWorkStore : IAsyncDisposable
{
    /// <summary>
    /// Enqueues batches, in order, in one transaction. A draft whose <see cref="QueuedBatchDraft.IdempotencyKey"/>
    /// was enqueued before returns the batch stored then (<see cref="EnqueueResult.Created"/> false), unchanged.
    /// </summary>
    ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the earliest ready batches of one session: at most <paramref name="maxBatches"/> of them,
    /// consecutive in enqueue order. <c>null</c> when the session's head is not ready or held by a live claim.
    /// </summary>
    ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken);

    /// <summary>
    /// Claims across sessions so a pool drains many at once: up to <paramref name="maxSessions"/> sessions
    /// whose head is ready and not held, oldest head (lowest <see cref="QueuedBatch.Sequence"/>) first, each claim with at most
    /// <paramref name="maxBatchesPerSession"/> batches. Empty when nothing is ready.
    /// Concurrent callers never get the same session (PostgreSQL: <c>FOR UPDATE SKIP LOCKED</c>).
    /// </summary>
    ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken);

    /// <summary>
    /// Claims exactly <paramref name="batchIds"/> (in the order given), and only when they are the
    /// session's next ready batches in that order; otherwise claims nothing and returns <c>null</c>.
    /// </summary>
    ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken);

    /// <summary>
    /// Extends the lease of every batch still held under <paramref name="fence"/> to
    /// <paramref name="timeToLive"/> from now. The new expiry, or <c>null</c> when nothing is held under it any more.
    /// A lapsed lease nobody re-claimed is renewed too, unless another claim of the same session is
    /// live by then (a successor took part of it): renewing would make two live claims of one session.
    /// </summary>
    ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken);

    /// <summary>
    /// Settles batches in one transaction, each checked against its fence: complete, abandon (back to
    /// pending with attempts + 1, available after a delay) or dead-letter (never claimed again, the
    /// reason kept). One result per settlement, in order. Returns only once the change is durable.
    /// </summary>
    ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken);

    /// <summary>
    /// Cancels a batch that is not held by a live claim: the removed batch, or <c>null</c> when it is
    /// missing, settled, or held by a live claim ("already claimed or completed"). A batch whose claim's
    /// lease lapsed is cancelled (its old claim's settles are then FencedOut). The removed batch's
    /// idempotency key is released: enqueueing it again creates a new batch.
    /// </summary>
    ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken);

    /// <summary>Every batch of the session not yet settled, in enqueue order, including those held by a live claim.</summary>
    ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>
    /// The session's batches not held by a live claim and not settled, in enqueue order; a batch
    /// whose claim's lease lapsed counts as pending (it can be re-claimed or cancelled).
    /// </summary>
    ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>Counts by state, the oldest pending batch's age, live claims and dead letters (each list at most <paramref name="maxListed"/> long).</summary>
    ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken);

    /// <summary>
    /// Whether a call that threw <paramref name="exception"/> may succeed when tried again (a lost
    /// connection, a busy database): the store source retries those with backoff and gives up on
    /// the rest (a read-only file, a full disk, a schema error) with one clear error.
    /// Default: every exception but cancellation is transient.
    /// </summary>
    bool IsTransient(Exception exception) => exception is not OperationCanceledException;
}
