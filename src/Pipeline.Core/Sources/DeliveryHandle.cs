using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>The handle of a <see cref="QueuedCommandSource"/> delivery: which item, and which delivery of it.</summary>
public readonly record struct DeliveryHandle
{
    internal DeliveryHandle(long deliveryId, ClaimOutcome outcome)
    {
        DeliveryId = deliveryId;
        Outcome = outcome;
    }

    /// <summary>Unique per delivery: a redelivered item gets a new id.</summary>
    public long DeliveryId { get; }

    internal ClaimOutcome Outcome { get; }
}

/// <summary>An item a source gave up on, with the reason.</summary>
/// <param name="Outcome">The outcome the item was last delivered with.</param>
/// <param name="Reason">Why it was terminated.</param>
public sealed record DeadLetter(ClaimOutcome Outcome, string Reason);
