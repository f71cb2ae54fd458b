using System.Collections.Concurrent;
using Pipeline.Events;

namespace Pipeline.Testing;

/// <summary>Keeps every event it is given; counts the command.completed events per command.</summary>
public sealed class CollectingSink : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _events = new();
    private readonly ConcurrentDictionary<string, int> _completed = new();
    private int _writes;

    /// <summary>When set and true for a call, that write throws and keeps nothing.</summary>
    public Func<bool>? FailWrite { get; init; }

    /// <summary>Write calls, failed ones included.</summary>
    public int Writes => Volatile.Read(ref _writes);

    public IReadOnlyList<PipelineEvent> Events => [.. _events];

    /// <summary>Distinct command ids with a command.completed event.</summary>
    public int CompletedIds => _completed.Count;

    /// <summary>The command.completed events of each command id.</summary>
    public IReadOnlyDictionary<string, int> CompletedById => _completed;

    public IEnumerable<PipelineEvent> For(string commandId) => _events.Where(e => e.CommandId == commandId);

    public IEnumerable<string> TypesFor(string commandId) => For(commandId).Select(e => e.EventType);

    public IEnumerable<PipelineEvent> OfType(string type) => _events.Where(e => e.EventType == type);

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
            if (e.EventType == EventTypes.CommandCompleted)
            {
                _completed.AddOrUpdate(e.CommandId!, 1, static (_, n) => n + 1);
            }
        }

        return ValueTask.CompletedTask;
    }
}
