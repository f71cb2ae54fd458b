namespace Pipeline.Storage;

/// <summary>
/// A granted claim: consecutive batches of one session, held by <see cref="Owner"/> under
/// <see cref="Fence"/> until <see cref="ExpiresAt"/> unless renewed.
/// </summary>
public sealed record QueuedWorkClaim
{
    /// <summary>The session the batches belong to.</summary>
    public required string SessionId { get; init; }

    /// <summary>Who holds it.</summary>
    public required string Owner { get; init; }

    /// <summary>The fencing token: greater than that of every earlier claim in the store.</summary>
    public required long Fence { get; init; }

    /// <summary>When the lease lapses unless renewed (store clock).</summary>
    public required DateTimeOffset ExpiresAt { get; init; }

    /// <summary>The claimed batches, in enqueue order; never empty.</summary>
    public required IReadOnlyList<QueuedBatch> Batches { get; init; }
}
