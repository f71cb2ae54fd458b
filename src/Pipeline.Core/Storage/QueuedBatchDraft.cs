namespace Pipeline.Storage;

/// <summary>A batch to enqueue.</summary>
public sealed record QueuedBatchDraft
{
    /// <summary>The session the batch belongs to; a session's batches are claimed in enqueue order.</summary>
    public required string SessionId { get; init; }

    /// <summary>The work itself, opaque to the store (for the store source: one command as UTF-8 JSON).</summary>
    public required ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>
    /// A caller-given key, unique across the store: enqueueing it again returns the first batch and
    /// changes nothing. <c>null</c> (the default) enqueues every time.
    /// </summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Not claimed before this time (store clock). <c>null</c> (the default): ready at once.</summary>
    public DateTimeOffset? AvailableAt { get; init; }
}

/// <summary>What an enqueue stored: the batch, and whether this call created it (false: its idempotency key was enqueued before).</summary>
public readonly record struct EnqueueResult(QueuedBatch Batch, bool Created);
