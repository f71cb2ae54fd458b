using Microsoft.Extensions.Time.Testing;
using Pipeline.Storage;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// One <see cref="IQueuedWorkStore"/> under the store conformance suite: a fresh, empty store and
/// a hand on its clock.
/// </summary>
public abstract class QueuedWorkStoreBackend : IAsyncDisposable
{
    /// <summary>The store under test; empty when the backend is created.</summary>
    public abstract IQueuedWorkStore Store { get; }

    /// <summary>The store clock's now (a database's clock, or the injected time provider).</summary>
    public abstract ValueTask<DateTimeOffset> NowAsync();

    /// <summary>
    /// Moves the store's clock on by at least <paramref name="span"/>: a fake clock advances, a
    /// database clock is waited for (which is why the suite's lapsing leases are short).
    /// </summary>
    public abstract Task AdvanceAsync(TimeSpan span);

    /// <inheritdoc/>
    public abstract ValueTask DisposeAsync();
}

/// <summary>A store on a <see cref="FakeTimeProvider"/> (in-memory, SQLite): the clock moves only when the suite moves it.</summary>
/// <param name="store">The store, created on <paramref name="time"/>.</param>
/// <param name="time">The store's clock.</param>
/// <param name="cleanUp">Runs after the store is disposed (a temp file removed); optional.</param>
public sealed class FakeClockStoreBackend(IQueuedWorkStore store, FakeTimeProvider time, Action? cleanUp = null) : QueuedWorkStoreBackend
{
    /// <inheritdoc/>
    public override IQueuedWorkStore Store => store;

    /// <summary>The store's clock.</summary>
    public FakeTimeProvider Time => time;

    /// <inheritdoc/>
    public override ValueTask<DateTimeOffset> NowAsync() => new(time.GetUtcNow());

    /// <inheritdoc/>
    public override Task AdvanceAsync(TimeSpan span)
    {
        time.Advance(span);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override async ValueTask DisposeAsync()
    {
        await store.DisposeAsync();
        cleanUp?.Invoke();
    }
}
