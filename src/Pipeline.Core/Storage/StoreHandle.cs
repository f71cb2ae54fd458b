namespace Pipeline.Storage;

/// <summary>The store source's handle: one claimed batch, settled under the fence it was claimed with.</summary>
public sealed class StoreHandle
{
    internal StoreHandle(QueuedBatch batch, long fence, long claimedAt)
    {
        Batch = batch;
        Fence = fence;
        ClaimedAt = claimedAt;
    }

    /// <summary>The claimed batch as the claim returned it.</summary>
    public QueuedBatch Batch { get; }

    /// <summary>The fence of the claim that holds it.</summary>
    public long Fence { get; }

    /// <summary>When its lease was last taken or renewed (a <see cref="TimeProvider"/> timestamp of the worker's clock).</summary>
    internal long ClaimedAt { get; set; }
}

/// <summary>
/// What the store source tells a claimer of one delivery (<see cref="Claiming.ClaimContext.Delivery"/>):
/// the batch and the lease it is held under.
/// </summary>
/// <param name="SessionId">The batch's session.</param>
/// <param name="BatchId">The batch.</param>
/// <param name="Sequence">Its enqueue order in the store.</param>
/// <param name="Attempts">How many of its claims were abandoned before this one.</param>
/// <param name="Lease">The claim it is held under.</param>
public sealed record StoreDelivery(string SessionId, string BatchId, long Sequence, int Attempts, ClaimLease Lease);
