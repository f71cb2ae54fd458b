namespace Pipeline.Storage;

/// <summary>What <c>pipeline status</c> shows: the store at one moment.</summary>
public sealed record QueueSummary
{
    /// <summary>Batches waiting to be claimed, including those whose claim's lease lapsed.</summary>
    public required long Pending { get; init; }

    /// <summary>Batches held by a live claim.</summary>
    public required long Claimed { get; init; }

    /// <summary>Batches completed.</summary>
    public required long Completed { get; init; }

    /// <summary>Batches dead-lettered.</summary>
    public required long DeadLettered { get; init; }

    /// <summary>How long the oldest pending batch has waited since it was enqueued; <c>null</c> when none is pending.</summary>
    public TimeSpan? OldestPendingAge { get; init; }

    /// <summary>Live claims, soonest expiry first (at most the number asked for).</summary>
    public required IReadOnlyList<LiveClaimSummary> LiveClaims { get; init; }

    /// <summary>Dead letters, latest first (at most the number asked for).</summary>
    public required IReadOnlyList<QueuedBatch> DeadLetters { get; init; }
}

/// <summary>One live claim as <c>pipeline status</c> lists it.</summary>
/// <param name="SessionId">The session.</param>
/// <param name="Owner">Who holds it.</param>
/// <param name="Fence">Its fencing token.</param>
/// <param name="ExpiresAt">When its lease lapses unless renewed.</param>
/// <param name="Batches">How many batches it holds.</param>
public sealed record LiveClaimSummary(string SessionId, string Owner, long Fence, DateTimeOffset ExpiresAt, int Batches);
