namespace Pipeline.Testing.Conformance;

/// <summary>
/// What the conformance suites share: each case makes its own backends, and every one it made is
/// disposed when the case ends, whatever the case's outcome.
/// </summary>
/// <typeparam name="TBackend">The suite's backend: the unit under test and its hand on it.</typeparam>
public abstract class ConformanceSuite<TBackend> : IAsyncLifetime
    where TBackend : IAsyncDisposable
{
    private readonly List<TBackend> _backends = [];

    /// <inheritdoc/>
    public Task InitializeAsync() => Task.CompletedTask;

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }
    }

    /// <summary>Registers <paramref name="backend"/> to be disposed with the case; returns it.</summary>
    protected TBackend Track(TBackend backend)
    {
        _backends.Add(backend);
        return backend;
    }
}
