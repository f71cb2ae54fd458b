namespace Pipeline.Tests.Support;

/// <summary>How a handle was settled.</summary>
internal enum SettleKind
{
    Acked,
    Nacked,
    NackedWithDelay,
    Terminated,
}

/// <summary>
/// A test source (the seed's MockSource, grown up): yields a fixed or generated sequence of
/// outcomes, records every settle per handle, and injects faults when asked. Handles are
/// sequential longs, so a settle of an unknown or already-settled handle is detected.
/// </summary>
internal sealed class RecordingSource :
    ICommandSource<long>, ISupportsDelayedNack<long>, ISupportsTerminate<long>
{
    private readonly Func<long, ClaimOutcome?> _next;
    private readonly ConcurrentDictionary<long, SettleKind> _settled = new();
    private readonly ConcurrentQueue<(long Handle, SettleKind Kind)> _log = new();
    private long _nextHandle = -1;
    private long _outstandingNext;
    private long _maxHeld;
    private long _duplicateSettles;

    public RecordingSource(IEnumerable<ClaimOutcome> outcomes)
    {
        var queue = new ConcurrentQueue<ClaimOutcome>(outcomes);
        _next = _ => queue.TryDequeue(out var o) ? o : null;
    }

    /// <summary>Generated outcomes: <paramref name="next"/> gets the handle number and returns null when done.</summary>
    public RecordingSource(Func<long, ClaimOutcome?> next)
    {
        _next = next;
    }

    public Func<bool>? FailNext { get; init; }

    public Func<bool>? FailSettle { get; init; }

    public long Pulled => Volatile.Read(ref _nextHandle) + 1;

    public IReadOnlyDictionary<long, SettleKind> Settled => _settled;

    public IEnumerable<(long Handle, SettleKind Kind)> Log => _log;

    public long DuplicateSettles => Volatile.Read(ref _duplicateSettles);

    /// <summary>Largest seen (NextAsync calls in progress + handles pulled and not settled).</summary>
    public long MaxHeld => Volatile.Read(ref _maxHeld);

    public async ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _outstandingNext);
        TrackHeld();
        try
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            if (FailNext?.Invoke() == true)
            {
                throw new InvalidOperationException("injected NextAsync fault");
            }

            lock (_next)
            {
                var handle = _nextHandle + 1;
                var outcome = _next(handle);
                if (outcome is null)
                {
                    return null;
                }

                _nextHandle = handle;
                return new Pulled<long>(outcome.Value, handle);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _outstandingNext);
        }
    }

    public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => Record(handle, SettleKind.Acked);

    public ValueTask NackAsync(long handle, CancellationToken cancellationToken) => Record(handle, SettleKind.Nacked);

    public ValueTask NackAsync(long handle, TimeSpan delay, CancellationToken cancellationToken) => Record(handle, SettleKind.NackedWithDelay);

    public ValueTask TerminateAsync(long handle, string reason, CancellationToken cancellationToken) => Record(handle, SettleKind.Terminated);

    private ValueTask Record(long handle, SettleKind kind)
    {
        if (handle < 0 || handle > Volatile.Read(ref _nextHandle) || !_settled.TryAdd(handle, kind))
        {
            Interlocked.Increment(ref _duplicateSettles);
        }

        _log.Enqueue((handle, kind));
        if (FailSettle?.Invoke() == true)
        {
            throw new InvalidOperationException("injected settle fault");
        }

        return ValueTask.CompletedTask;
    }

    private void TrackHeld()
    {
        var held = Volatile.Read(ref _outstandingNext) + (Pulled - _settled.Count);
        long seen;
        while (held > (seen = Volatile.Read(ref _maxHeld)) && Interlocked.CompareExchange(ref _maxHeld, held, seen) != seen)
        {
        }
    }
}
