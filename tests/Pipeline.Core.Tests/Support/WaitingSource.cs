namespace Pipeline.Tests.Support;

/// <summary>
/// A source whose <see cref="NextAsync"/> waits for an item on its token (<c>Task.WaitAsync</c>,
/// as a network client's receive does), and that watches what it is asked after the pipeline's
/// stop: every call made with an already-cancelled token is counted, and after
/// <see cref="EscapeAfter"/> such calls it answers "exhausted", so a pipeline that keeps calling
/// is let go instead of spinning forever in a test process. Settles are recorded per handle.
/// </summary>
internal sealed class WaitingSource : ICommandSource<long>
{
    private readonly object _gate = new();
    private readonly Queue<ClaimOutcome> _ready = new();
    private readonly ConcurrentDictionary<long, int> _settles = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _nextHandle = -1;
    private int _cancelledCalls;
    private int _lastCancelledCallThread;
    private int _waiting;

    /// <summary>Calls with a cancelled token after which <see cref="NextAsync"/> returns null.</summary>
    public int EscapeAfter { get; init; } = 10_000;

    /// <summary>Calls made with a token that was already cancelled.</summary>
    public int CancelledCalls => Volatile.Read(ref _cancelledCalls);

    /// <summary>The managed thread that made the last call with a cancelled token.</summary>
    public int LastCancelledCallThread => Volatile.Read(ref _lastCancelledCallThread);

    /// <summary>Calls waiting for an item now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Handles handed out.</summary>
    public long Pulled => Volatile.Read(ref _nextHandle) + 1;

    /// <summary>Settle calls per handle.</summary>
    public IReadOnlyDictionary<long, int> Settles => _settles;

    /// <summary>Adds one item.</summary>
    public void Enqueue(Command command)
    {
        lock (_gate)
        {
            _ready.Enqueue(ClaimOutcome.Claimed(command));
            var changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            changed.TrySetResult();
        }
    }

    public async ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                Volatile.Write(ref _lastCancelledCallThread, Environment.CurrentManagedThreadId);
                if (Interlocked.Increment(ref _cancelledCalls) >= EscapeAfter)
                {
                    return null;
                }
            }

            cancellationToken.ThrowIfCancellationRequested();
            Task changed;
            lock (_gate)
            {
                if (_ready.TryDequeue(out var outcome))
                {
                    return new Pulled<long>(outcome, Interlocked.Increment(ref _nextHandle));
                }

                changed = _changed.Task;
            }

            Interlocked.Increment(ref _waiting);
            try
            {
                await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
        }
    }

    public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => Record(handle);

    public ValueTask NackAsync(long handle, CancellationToken cancellationToken) => Record(handle);

    private ValueTask Record(long handle)
    {
        _settles.AddOrUpdate(handle, 1, static (_, n) => n + 1);
        return ValueTask.CompletedTask;
    }
}
