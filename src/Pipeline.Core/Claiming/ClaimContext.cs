using Pipeline.Commands;
using Pipeline.Sources;

namespace Pipeline.Claiming;

/// <summary>
/// What the Claim block knows of one delivery when it asks an <see cref="IClaimer"/>: the outcome
/// the source pulled, and the source's own description of the delivery. A claimer often needs more
/// than the command: the KV claimer the stream sequence (to tell its own redelivery from a second
/// publish), an HTTP claimer the notification it claims for, a store claimer the row's lease.
/// </summary>
/// <remarks>
/// The engine stays source-agnostic: <see cref="Delivery"/> is whatever the source's
/// <see cref="ISupportsDeliveryInfo{THandle}.DeliveryOf"/> returned for this very delivery, and a
/// claimer pattern-matches the type it understands (<c>context.Delivery is NatsDelivery d</c>),
/// treating anything else (or null) as "not known". Built only for a claimer other than
/// <see cref="PassThroughClaimer"/>, so runs without one pay nothing for it.
/// </remarks>
/// <param name="Pulled">The outcome the source pulled; always <see cref="ClaimOutcomeKind.Claimed"/> with a command when the engine calls.</param>
/// <param name="Delivery">The source's description of this delivery, or null when the source offers none.</param>
public readonly record struct ClaimContext(ClaimOutcome Pulled, object? Delivery = null)
{
    /// <summary>The pulled command (<see cref="ClaimOutcome.Command"/> of <see cref="Pulled"/>).</summary>
    public Command? Command => Pulled.Command;
}
