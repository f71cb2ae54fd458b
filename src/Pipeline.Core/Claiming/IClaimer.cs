using Pipeline.Commands;

namespace Pipeline.Claiming;

/// <summary>
/// Turns a pulled command into a claim outcome: an HTTP control plane, a KV create-if-absent,
/// a store row. Called by the Claim block only for items the source delivered as
/// <see cref="ClaimOutcomeKind.Claimed"/>; a throw is treated as <see cref="ClaimOutcomeKind.RetryLater"/>.
/// </summary>
public interface IClaimer
{
    /// <summary>
    /// Claims the pulled command (<see cref="ClaimContext.Pulled"/>) for this worker. The context
    /// also carries the source's description of the delivery (<see cref="ClaimContext.Delivery"/>),
    /// when the source offers one, for a claim that depends on which delivery it is.
    /// </summary>
    ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken);
}

/// <summary>For sources that already claim inside <c>NextAsync</c>: the pulled outcome stands.</summary>
public sealed class PassThroughClaimer : IClaimer
{
    /// <summary>The shared instance.</summary>
    public static PassThroughClaimer Instance { get; } = new();

    /// <inheritdoc/>
    public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken) => new(context.Pulled);
}
