using Pipeline.Commands;

namespace Pipeline.Claiming;

/// <summary>
/// Turns a pulled command into a claim outcome: an HTTP control plane, a KV create-if-absent,
/// a store row. Called by the Claim block only for items the source delivered as
/// <see cref="ClaimOutcomeKind.Claimed"/>; a throw is treated as <see cref="ClaimOutcomeKind.RetryLater"/>.
/// </summary>
public interface IClaimer
{
    /// <summary>Claims <paramref name="pulled"/>'s command for this worker.</summary>
    ValueTask<ClaimOutcome> ClaimAsync(ClaimOutcome pulled, CancellationToken cancellationToken);
}

/// <summary>For sources that already claim inside <c>NextAsync</c>: the pulled outcome stands.</summary>
public sealed class PassThroughClaimer : IClaimer
{
    /// <summary>The shared instance.</summary>
    public static PassThroughClaimer Instance { get; } = new();

    /// <inheritdoc/>
    public ValueTask<ClaimOutcome> ClaimAsync(ClaimOutcome pulled, CancellationToken cancellationToken) => new(pulled);
}
