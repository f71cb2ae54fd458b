namespace Pipeline.Storage;

/// <summary>How one claimed batch is settled, checked against the fence it was claimed under.</summary>
public readonly record struct BatchSettlement
{
    private BatchSettlement(string batchId, long fence, SettleKind kind, TimeSpan delay, string? reason)
    {
        BatchId = batchId;
        Fence = fence;
        Kind = kind;
        Delay = delay;
        Reason = reason;
    }

    /// <summary>The batch.</summary>
    public string BatchId { get; }

    /// <summary>The fence of the claim that holds it.</summary>
    public long Fence { get; }

    /// <summary>Complete, abandon or dead-letter.</summary>
    public SettleKind Kind { get; }

    /// <summary>For <see cref="SettleKind.Abandon"/>: how long before it is ready again.</summary>
    public TimeSpan Delay { get; }

    /// <summary>For <see cref="SettleKind.DeadLetter"/>: why.</summary>
    public string? Reason { get; }

    /// <summary>The batch is done; never claimed again.</summary>
    public static BatchSettlement Complete(string batchId, long fence) => new(batchId, fence, SettleKind.Complete, TimeSpan.Zero, null);

    /// <summary>
    /// The longest delay an abandon keeps: 100 years. A longer one (<see cref="TimeSpan.MaxValue"/>) is
    /// cut to it, because now plus it is past every time a store holds, and the store would refuse the
    /// whole settle call, the other settles in it included.
    /// </summary>
    public static TimeSpan MaxDelay { get; } = TimeSpan.FromDays(36_500);

    /// <summary>Back to pending, attempts + 1, ready again after <paramref name="delay"/> (at most <see cref="MaxDelay"/>).</summary>
    public static BatchSettlement Abandon(string batchId, long fence, TimeSpan delay = default) =>
        new(batchId, fence, SettleKind.Abandon, delay < TimeSpan.Zero ? throw new ArgumentOutOfRangeException(nameof(delay), delay, "A delay cannot be negative.") : TimeSpan.FromTicks(Math.Min(delay.Ticks, MaxDelay.Ticks)), null);

    /// <summary>Given up on for good, <paramref name="reason"/> kept.</summary>
    public static BatchSettlement DeadLetter(string batchId, long fence, string reason) =>
        new(batchId, fence, SettleKind.DeadLetter, TimeSpan.Zero, reason ?? throw new ArgumentNullException(nameof(reason)));
}

/// <summary>How a batch is settled.</summary>
public enum SettleKind
{
    /// <summary>Done.</summary>
    Complete,

    /// <summary>Handed back to pending.</summary>
    Abandon,

    /// <summary>Given up on, with a reason.</summary>
    DeadLetter,
}

/// <summary>What a settle did.</summary>
public enum SettleStatus
{
    /// <summary>The batch was held under the fence and is now settled as asked.</summary>
    Settled,

    /// <summary>
    /// Nothing changed: the batch is no longer held under that fence (re-claimed by a successor,
    /// cancelled, already settled, or never existed).
    /// </summary>
    FencedOut,
}
