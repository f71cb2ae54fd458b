using System.Collections.Concurrent;
using Pipeline.Events;

namespace Pipeline.Tests.Support;

internal sealed class CollectingSink : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _events = new();

    public IReadOnlyList<PipelineEvent> Events => [.. _events];

    public IEnumerable<PipelineEvent> For(string commandId) => _events.Where(e => e.CommandId == commandId);

    public IEnumerable<string> TypesFor(string commandId) => For(commandId).Select(e => e.EventType);

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var e in batch.Span)
        {
            _events.Enqueue(e);
        }

        return ValueTask.CompletedTask;
    }
}
