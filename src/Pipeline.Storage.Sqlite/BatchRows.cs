using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Pipeline.Storage.Sqlite;

/// <summary>Reading a batch row, and the batch id as the row's sequence.</summary>
internal static class BatchRows
{
    /// <summary>The columns <see cref="Read"/> expects, in order, of a statement on <c>batches</c> (not aliased): the payload from its own table.</summary>
    public const string Columns = "seq, session_id, (SELECT payload FROM payloads WHERE payloads.seq = batches.seq), idempotency_key, enqueued_at, available_at, attempts, state, owner, fence, expires_at, dead_letter_reason";

    public static QueuedBatch Read(SqliteDataReader reader) => new()
    {
        BatchId = IdOf(reader.GetInt64(0)),
        Sequence = reader.GetInt64(0),
        SessionId = reader.GetString(1),
        Payload = reader.GetFieldValue<byte[]>(2),
        IdempotencyKey = reader.IsDBNull(3) ? null : reader.GetString(3),
        EnqueuedAt = Time(reader.GetInt64(4)),
        AvailableAt = Time(reader.GetInt64(5)),
        Attempts = reader.GetInt32(6),
        State = (QueuedBatchState)reader.GetInt32(7),
        Lease = reader.IsDBNull(9) ? null : new ClaimLease(reader.GetString(8), reader.GetInt64(9), Time(reader.GetInt64(10))),
        DeadLetterReason = reader.IsDBNull(11) ? null : reader.GetString(11),
    };

    public static List<QueuedBatch> ReadAll(SqliteDataReader reader)
    {
        var batches = new List<QueuedBatch>();
        while (reader.Read())
        {
            batches.Add(Read(reader));
        }

        return batches;
    }

    public static string IdOf(long sequence) => sequence.ToString(CultureInfo.InvariantCulture);

    /// <summary>The sequence a batch id names; false for an id this store never hands out.</summary>
    public static bool TryParseId(string batchId, out long sequence) =>
        long.TryParse(batchId, NumberStyles.None, CultureInfo.InvariantCulture, out sequence)
        && sequence > 0
        && string.Equals(IdOf(sequence), batchId, StringComparison.Ordinal);

    public static DateTimeOffset Time(long ticks) => new(ticks, TimeSpan.Zero);
}
