using Npgsql;

namespace Pipeline.Storage.Postgres;

/// <summary>Reads a batch row (<see cref="PostgresStoreSql.BatchColumns"/>, in order) into a <see cref="QueuedBatch"/>.</summary>
internal static class BatchRows
{
    /// <summary>The batch whose columns start at <paramref name="first"/>.</summary>
    public static QueuedBatch Read(NpgsqlDataReader reader, int first = 0)
    {
        var owner = reader.IsDBNull(first + 8) ? null : reader.GetString(first + 8);
        return new QueuedBatch
        {
            BatchId = BatchIds.Format(reader.GetInt64(first)),
            SessionId = reader.GetString(first + 1),
            Sequence = reader.GetInt64(first),
            Payload = reader.GetFieldValue<byte[]>(first + 2),
            IdempotencyKey = reader.IsDBNull(first + 3) ? null : reader.GetString(first + 3),
            EnqueuedAt = reader.GetFieldValue<DateTimeOffset>(first + 4),
            AvailableAt = reader.GetFieldValue<DateTimeOffset>(first + 5),
            Attempts = reader.GetInt32(first + 6),
            State = State(reader.GetInt16(first + 7)),
            Lease = owner is null || reader.IsDBNull(first + 9) || reader.IsDBNull(first + 10)
                ? null
                : new ClaimLease(owner, reader.GetInt64(first + 9), reader.GetFieldValue<DateTimeOffset>(first + 10)),
            DeadLetterReason = reader.IsDBNull(first + 11) ? null : reader.GetString(first + 11),
        };
    }

    /// <summary>The stored state's code (<c>batches.state</c>) as the contract's state.</summary>
    public static QueuedBatchState State(short code) => code switch
    {
        0 => QueuedBatchState.Pending,
        1 => QueuedBatchState.Claimed,
        2 => QueuedBatchState.Completed,
        3 => QueuedBatchState.DeadLettered,
        _ => throw new InvalidOperationException($"Unknown batch state {code} in the store."),
    };
}

/// <summary>A batch's id is its sequence, in invariant decimal.</summary>
internal static class BatchIds
{
    public static string Format(long sequence) => sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The sequence an id names; false for a string no batch of this store can have, the same number
    /// written another way ("012") included: it names no batch, as in the other stores.
    /// </summary>
    public static bool TryParse(string? batchId, out long sequence) =>
        long.TryParse(batchId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sequence)
        && sequence > 0
        && string.Equals(Format(sequence), batchId, StringComparison.Ordinal);
}
