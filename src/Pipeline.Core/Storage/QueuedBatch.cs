namespace Pipeline.Storage;

/// <summary>A stored batch as the store last knew it.</summary>
public sealed record QueuedBatch
{
    /// <summary>The store's id for the batch.</summary>
    public required string BatchId { get; init; }

    /// <summary>The session the batch belongs to.</summary>
    public required string SessionId { get; init; }

    /// <summary>The store-wide enqueue order (grows with every enqueued batch).</summary>
    public required long Sequence { get; init; }

    /// <summary>The work as enqueued.</summary>
    public required ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>The caller's idempotency key, when one was given.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>When it was enqueued (store clock).</summary>
    public required DateTimeOffset EnqueuedAt { get; init; }

    /// <summary>Not claimed before this time (store clock).</summary>
    public required DateTimeOffset AvailableAt { get; init; }

    /// <summary>
    /// How many of its claims ended without a completion: abandoned, or their lease lapsed and it was
    /// claimed again (0 for a batch whose every claim so far is the current one). A command that
    /// kills its worker each time still reaches its attempt limit this way.
    /// </summary>
    public required int Attempts { get; init; }

    /// <summary>Where the batch stands.</summary>
    public required QueuedBatchState State { get; init; }

    /// <summary>The claim that holds or last held it; <c>null</c> when never claimed since its last abandon.</summary>
    public ClaimLease? Lease { get; init; }

    /// <summary>Why it was dead-lettered (state <see cref="QueuedBatchState.DeadLettered"/>).</summary>
    public string? DeadLetterReason { get; init; }
}

/// <summary>Where a batch stands.</summary>
public enum QueuedBatchState
{
    /// <summary>Waiting to be claimed (possibly not yet available).</summary>
    Pending,

    /// <summary>Held by a claim (whose lease may have lapsed: see <see cref="ClaimLease.ExpiresAt"/>).</summary>
    Claimed,

    /// <summary>Completed by its claim; never claimed again.</summary>
    Completed,

    /// <summary>Given up on with a reason; never claimed again.</summary>
    DeadLettered,
}

/// <summary>The lease a batch is (or was last) held under.</summary>
/// <param name="Owner">Who claimed it (a worker id).</param>
/// <param name="Fence">The claim's fencing token.</param>
/// <param name="ExpiresAt">When the lease lapses unless renewed (store clock).</param>
public sealed record ClaimLease(string Owner, long Fence, DateTimeOffset ExpiresAt);
