namespace Pipeline.Tests.Support;

/// <summary>
/// A keep-alive source whose calls ignore their tokens, for the paths a token cannot end:
/// <see cref="NextAsync"/> hands out the items the test <see cref="Release"/>s, whenever it does
/// (before or after a stop); renewals and nacks of the handles <see cref="HangRenewal"/> and <see cref="HangNack"/> pick never return;
/// <see cref="BlockNack"/>, while set, makes a nack block its calling thread (a synchronous client
/// call). Handles start at 1, so a settle of handle 0 (a handle's default value) is one that was
/// never handed out. Every settle and renewal is recorded per handle.
/// </summary>
internal sealed class StubbornSource : ICommandSource<long>, ISupportsKeepAlive<long>
{
    private readonly SemaphoreSlim _released = new(0);
    private readonly ConcurrentQueue<ClaimOutcome> _items = new();
    private readonly ConcurrentDictionary<long, ConcurrentQueue<string>> _settles = new();
    private readonly ConcurrentDictionary<long, int> _renewals = new();
    private readonly TaskCompletionSource _never = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastHandle;

    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Renewals of these handles never return and ignore their token.</summary>
    public Func<long, bool> HangRenewal { get; init; } = static _ => false;

    /// <summary>Nacks of these handles never return and ignore their token.</summary>
    public Func<long, bool> HangNack { get; init; } = static _ => false;

    /// <summary>While not set, every nack blocks its calling thread until it is.</summary>
    public ManualResetEventSlim? BlockNack { get; init; }

    /// <summary>Handles handed out.</summary>
    public long Pulled => Volatile.Read(ref _lastHandle);

    /// <summary>Adds an item and lets one waiting (or the next) <see cref="NextAsync"/> call return it.</summary>
    public void Release(Command command)
    {
        _items.Enqueue(ClaimOutcome.Claimed(command));
        _released.Release();
    }

    /// <summary>Lets hung renewals and nacks return (cleanup).</summary>
    public void ReleaseHangs() => _never.TrySetResult();

    /// <summary>Settle calls made for <paramref name="handle"/>, in order.</summary>
    public IReadOnlyList<string> SettlesOf(long handle) => _settles.TryGetValue(handle, out var calls) ? [.. calls] : [];

    /// <summary>Renewals begun for <paramref name="handle"/>.</summary>
    public int RenewalsOf(long handle) => _renewals.GetValueOrDefault(handle);

    public async ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
    {
        await _released.WaitAsync(CancellationToken.None).ConfigureAwait(false); // ignores its token
        _items.TryDequeue(out var outcome);
        return new Pulled<long>(outcome, Interlocked.Increment(ref _lastHandle));
    }

    public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => Record(handle, "ack");

    public ValueTask NackAsync(long handle, CancellationToken cancellationToken)
    {
        BlockNack?.Wait(CancellationToken.None);
        if (HangNack(handle))
        {
            _settles.GetOrAdd(handle, static _ => new ConcurrentQueue<string>()).Enqueue("nack (hangs)");
            return new ValueTask(_never.Task);
        }

        return Record(handle, "nack");
    }

    public async ValueTask KeepAliveAsync(long handle, CancellationToken cancellationToken)
    {
        _renewals.AddOrUpdate(handle, 1, static (_, n) => n + 1);
        if (HangRenewal(handle))
        {
            await _never.Task.ConfigureAwait(false);
        }
    }

    private ValueTask Record(long handle, string kind)
    {
        _settles.GetOrAdd(handle, static _ => new ConcurrentQueue<string>()).Enqueue(kind);
        return ValueTask.CompletedTask;
    }
}
