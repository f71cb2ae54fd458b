namespace Pipeline.Storage;

/// <summary>
/// The argument checks every <see cref="IQueuedWorkStore"/> backend makes the same way, so a bad
/// call throws the same exception whatever the backend.
/// </summary>
public static class StoreArguments
{
    /// <summary>Drafts are given and each names a session.</summary>
    public static void CheckDrafts(IReadOnlyList<QueuedBatchDraft> drafts)
    {
        ArgumentNullException.ThrowIfNull(drafts);
        foreach (var draft in drafts)
        {
            ArgumentNullException.ThrowIfNull(draft, nameof(drafts));
            ArgumentException.ThrowIfNullOrEmpty(draft.SessionId, nameof(drafts));
        }
    }

    /// <summary>A lease names its owner and lives for a positive time.</summary>
    public static void CheckLease(LeaseRequest lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentException.ThrowIfNullOrEmpty(lease.Owner, nameof(lease));
        CheckTimeToLive(lease.TimeToLive, nameof(lease));
    }

    /// <summary>A time to live is positive.</summary>
    public static void CheckTimeToLive(TimeSpan timeToLive, string paramName)
    {
        if (timeToLive <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(paramName, timeToLive, "A lease's time to live must be positive.");
        }
    }

    /// <summary>A count of batches, sessions or listed items is at least one.</summary>
    public static void CheckCount(int count, string paramName) => ArgumentOutOfRangeException.ThrowIfLessThan(count, 1, paramName);

    /// <summary>How many live claims and dead letters a summary lists: zero or more.</summary>
    public static void CheckListed(int maxListed) => ArgumentOutOfRangeException.ThrowIfNegative(maxListed);

    /// <summary>Batch ids to claim: at least one, none empty.</summary>
    public static void CheckBatchIds(IReadOnlyList<string> batchIds)
    {
        ArgumentNullException.ThrowIfNull(batchIds);
        if (batchIds.Count == 0)
        {
            throw new ArgumentException("Name at least one batch to claim.", nameof(batchIds));
        }

        foreach (var id in batchIds)
        {
            ArgumentException.ThrowIfNullOrEmpty(id, nameof(batchIds));
        }
    }

    /// <summary>Settlements are given.</summary>
    public static void CheckSettlements(IReadOnlyList<BatchSettlement> settlements)
    {
        ArgumentNullException.ThrowIfNull(settlements);
        foreach (var settlement in settlements)
        {
            ArgumentException.ThrowIfNullOrEmpty(settlement.BatchId, nameof(settlements));
        }
    }
}
