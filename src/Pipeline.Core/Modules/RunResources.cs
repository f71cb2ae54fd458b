using System.Runtime.ExceptionServices;

namespace Pipeline.Modules;

/// <summary>What a run opened (connections, a source, a sink, a claimer), closed newest first when the run ends: a sink's flush included.</summary>
public sealed class RunResources : IAsyncDisposable
{
    private readonly Stack<object> _items = new();

    /// <summary>Keeps <paramref name="item"/> to be disposed with the run.</summary>
    public T Add<T>(T item)
        where T : IAsyncDisposable
    {
        _items.Push(item);
        return item;
    }

    /// <summary>Keeps <paramref name="item"/> to be disposed with the run.</summary>
    public T AddDisposable<T>(T item)
        where T : IDisposable
    {
        _items.Push(item);
        return item;
    }

    /// <summary>Disposes everything, newest first; one that throws does not keep the rest (a connection, a file) open. The first error is rethrown.</summary>
    public async ValueTask DisposeAsync()
    {
        ExceptionDispatchInfo? first = null;
        while (_items.TryPop(out var item))
        {
            try
            {
                switch (item)
                {
                    case IAsyncDisposable a: await a.DisposeAsync().ConfigureAwait(false); break;
                    case IDisposable d: d.Dispose(); break;
                }
            }
            catch (Exception ex)
            {
                first ??= ExceptionDispatchInfo.Capture(ex);
            }
        }

        first?.Throw();
    }
}
