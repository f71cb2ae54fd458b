using System.Collections.Concurrent;
using Pipeline.Events;

namespace Pipeline.Cli;

/// <summary>Passes events on to the real sink and keeps the first few failures for the summary.</summary>
internal sealed class FailureRecorder(IEventSink inner, int keep) : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _failures = new();

    public IReadOnlyCollection<PipelineEvent> Failures => _failures;

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var e in batch.Span)
        {
            if (_failures.Count < keep && e.EventType is EventTypes.CommandFailed or EventTypes.ClaimFailed)
            {
                _failures.Enqueue(e);
            }
        }

        return inner.WriteAsync(batch, cancellationToken);
    }
}
