using Pipeline.Storage;

namespace Pipeline.Bench.Stores;

/// <summary>
/// One durable store under the bench: fresh, empty stores on demand, and the naive baseline over
/// a plain table of the same shape as the store's batches table, written with plain ADO.NET.
/// </summary>
internal abstract class StoreBackend : IAsyncDisposable
{
    /// <summary>The owner every claim and naive row names.</summary>
    public const string Owner = "bench";

    /// <summary>The <c>--quick-store</c> and <c>[Params]</c> name.</summary>
    public abstract string Name { get; }

    /// <summary>A new, empty store (its own file or schema), at its defaults.</summary>
    public abstract Task<IQueuedWorkStore> OpenEmptyAsync();

    /// <summary>Closes <paramref name="store"/> and deletes what it wrote.</summary>
    public abstract Task DropAsync(IQueuedWorkStore store);

    /// <summary>A fresh plain table holding <paramref name="drafts"/> as pending rows (loaded in one transaction, not measured).</summary>
    public abstract Task FillNaiveAsync(IReadOnlyList<QueuedBatchDraft> drafts);

    /// <summary>
    /// The naive worker: one row per transaction, claimed and completed inside it, until none is
    /// pending. Returns the sequences it completed, in order; <paramref name="run"/> is the work per row.
    /// </summary>
    public abstract Task<List<long>> DrainNaiveAsync(Action<ReadOnlyMemory<byte>> run);

    /// <summary>Rows of the last naive table by state: (pending, completed).</summary>
    public abstract Task<(long Pending, long Completed)> CountNaiveAsync();

    public static async Task<StoreBackend> StartAsync(string name) => name switch
    {
        "sqlite" => new SqliteBackend(),
        "postgres" => await PostgresBackend.StartAsync(),
        _ => throw new ArgumentException($"Unknown store '{name}' (sqlite or postgres).", nameof(name)),
    };

    public abstract ValueTask DisposeAsync();
}
