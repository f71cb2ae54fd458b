using Pipeline.Modules;
using Pipeline.Storage;

namespace Pipeline.Tests.Support;

/// <summary>The options of <see cref="MemoryStoreModule"/>, bound from <c>Pipeline:MemoryStore</c>.</summary>
public sealed record MemoryStoreOptions : IStoreWorkerOptions
{
    /// <summary>The store's name; required (not empty), so a store setting can be wrong.</summary>
    public string Name { get; init; } = "memory";

    /// <inheritdoc/>
    public StoreSourceOptions Source { get; init; } = new();
}

/// <summary>
/// The generic store module over a store the test holds (an in-memory one, or a decorator over
/// it): source kind <c>memory-store</c>, section <c>MemoryStore</c>, flag <c>--memory-store NAME</c>.
/// Each open hands out a view of the same store that the run may dispose without closing it.
/// </summary>
public sealed class MemoryStoreModule(IQueuedWorkStore store, Func<MemoryStoreOptions, MemoryStoreOptions>? configure = null)
    : StoreModule<MemoryStoreOptions>("memory-store", "MemoryStore", configure)
{
    /// <summary>When set, opening throws it (once per open).</summary>
    public Func<Exception?>? OpenError { get; set; }

    /// <summary>How often the store was opened.</summary>
    public int Opens { get; private set; }

    protected override string StoreName => "Memory";

    protected override string SystemName => "memory";

    protected override ModuleFlag Selector { get; } = new("--memory-store", "Pipeline:MemoryStore:Name", "The store's name.");

    protected override string SourceSummary => "a store in memory";

    protected override string StoreSummary => "a store in memory";

    protected override void FindStoreErrors(MemoryStoreOptions options, string section, ICollection<string> errors)
    {
        if (string.IsNullOrWhiteSpace(options.Name))
        {
            errors.Add($"{section}:Name must name the store.");
        }
    }

    protected override string Where(MemoryStoreOptions options) => $"memory:{options.Name}";

    protected override Task<IQueuedWorkStore> OpenStoreAsync(MemoryStoreOptions options, StoreOpening opening, CancellationToken cancellationToken)
    {
        Opens++;
        if (OpenError?.Invoke() is { } error)
        {
            throw error;
        }

        return Task.FromResult<IQueuedWorkStore>(new Undisposed(store));
    }

    protected override bool IsTransientOpenError(Exception exception) => exception is TimeoutException;

    // Disposing the run's view leaves the test's store open (the test reads it afterwards).
    private sealed class Undisposed(IQueuedWorkStore inner) : IQueuedWorkStore
    {
        public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken) => inner.EnqueueAsync(drafts, cancellationToken);

        public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken) => inner.ClaimSessionAsync(sessionId, lease, maxBatches, cancellationToken);

        public ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken) => inner.ClaimReadyAsync(lease, maxSessions, maxBatchesPerSession, cancellationToken);

        public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken) => inner.ClaimByIdsAsync(sessionId, batchIds, lease, cancellationToken);

        public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken) => inner.RenewAsync(fence, timeToLive, cancellationToken);

        public ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken) => inner.SettleAsync(settlements, cancellationToken);

        public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken) => inner.CancelAsync(sessionId, batchId, cancellationToken);

        public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) => inner.ListAsync(sessionId, cancellationToken);

        public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) => inner.ListPendingAsync(sessionId, cancellationToken);

        public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken) => inner.SummarizeAsync(maxListed, cancellationToken);

        public bool IsTransient(Exception exception) => inner.IsTransient(exception);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>
/// A store that behaves as the one it wraps until told to fail: then every call throws the given
/// error, which it calls permanent (a read-only file). Counts the enqueue calls (transactions).
/// </summary>
public sealed class BreakableStore(IQueuedWorkStore inner) : IQueuedWorkStore
{
    private int _enqueueCalls;

    /// <summary>When set, every call throws it.</summary>
    public Exception? Broken { get; set; }

    /// <summary>Enqueue calls that reached the store.</summary>
    public int EnqueueCalls => Volatile.Read(ref _enqueueCalls);

    public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken)
    {
        Check();
        Interlocked.Increment(ref _enqueueCalls);
        return inner.EnqueueAsync(drafts, cancellationToken);
    }

    public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken)
    {
        Check();
        return inner.ClaimSessionAsync(sessionId, lease, maxBatches, cancellationToken);
    }

    public ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
    {
        Check();
        return inner.ClaimReadyAsync(lease, maxSessions, maxBatchesPerSession, cancellationToken);
    }

    public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken)
    {
        Check();
        return inner.ClaimByIdsAsync(sessionId, batchIds, lease, cancellationToken);
    }

    public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        Check();
        return inner.RenewAsync(fence, timeToLive, cancellationToken);
    }

    public ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
    {
        Check();
        return inner.SettleAsync(settlements, cancellationToken);
    }

    public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken)
    {
        Check();
        return inner.CancelAsync(sessionId, batchId, cancellationToken);
    }

    public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) => inner.ListAsync(sessionId, cancellationToken);

    public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) => inner.ListPendingAsync(sessionId, cancellationToken);

    public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken) => inner.SummarizeAsync(maxListed, cancellationToken);

    public bool IsTransient(Exception exception) => exception is not (OperationCanceledException or UnauthorizedAccessException);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private void Check()
    {
        if (Broken is { } broken)
        {
            throw broken;
        }
    }
}
