using Pipeline.Commands;

namespace Pipeline.Bench.Legacy;

/// <summary>One pulled item on its way through the blocks. A struct: it is copied through the queues, never shared.</summary>
internal struct WorkItem<THandle>
{
    public WorkItem(Pulled<THandle> pulled, long pulledAt)
    {
        Outcome = pulled.Outcome;
        Handle = pulled.Handle;
        PulledAt = pulledAt;
    }

    public ClaimOutcome Outcome;
    public THandle Handle;

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the pull.</summary>
    public long PulledAt;

    /// <summary>The command id was recorded in the recent-ids cache by this item.</summary>
    public bool TracksId;

    /// <summary>A duplicate delivery of a command this worker is running or ran.</summary>
    public bool IsDuplicate;

    /// <summary>When the Ack-decision block took the claim (for the <c>command.claimed</c> event).</summary>
    public DateTimeOffset ClaimedAt;

    /// <summary>The handle has been settled (ack before dispatch).</summary>
    public bool Settled;
}
