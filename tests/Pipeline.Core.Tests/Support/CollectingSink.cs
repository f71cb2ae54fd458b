using System.Collections.Concurrent;
using Pipeline.Events;

namespace Pipeline.Tests.Support;

internal sealed class CollectingSink : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _events = new();
    private int _writes;

    /// <summary>When set and true for a call, that write throws and keeps nothing.</summary>
    public Func<bool>? FailWrite { get; init; }

    /// <summary>Write calls, failed ones included.</summary>
    public int Writes => Volatile.Read(ref _writes);

    public IReadOnlyList<PipelineEvent> Events => [.. _events];

    public IEnumerable<PipelineEvent> For(string commandId) => _events.Where(e => e.CommandId == commandId);

    public IEnumerable<string> TypesFor(string commandId) => For(commandId).Select(e => e.EventType);

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _writes);
        if (FailWrite?.Invoke() == true)
        {
            throw new IOException("injected sink failure");
        }

        foreach (var e in batch.Span)
        {
            _events.Enqueue(e);
        }

        return ValueTask.CompletedTask;
    }
}
