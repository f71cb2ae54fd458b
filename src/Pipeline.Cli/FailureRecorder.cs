using System.Collections.Concurrent;
using Pipeline.Events;

namespace Pipeline.Cli;

/// <summary>
/// Passes events on to the real sink, keeps the first few failures for the summary, and counts
/// the tool runs that started and never ended (a stop that cut them off).
/// </summary>
internal sealed class FailureRecorder(IEventSink inner, int keep) : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _failures = new();
    private long _started;
    private long _ended;

    public IReadOnlyCollection<PipelineEvent> Failures => _failures;

    /// <summary>Tool runs with a <c>command.started</c> and no <c>command.completed</c> or <c>command.failed</c>.</summary>
    public long Unfinished => Math.Max(0, Interlocked.Read(ref _started) - Interlocked.Read(ref _ended));

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var e in batch.Span)
        {
            switch (e.EventType)
            {
                case EventTypes.CommandStarted: Interlocked.Increment(ref _started); break;
                case EventTypes.CommandCompleted or EventTypes.CommandFailed: Interlocked.Increment(ref _ended); break;
            }

            if (_failures.Count < keep && e.EventType is EventTypes.CommandFailed or EventTypes.ClaimFailed)
            {
                _failures.Enqueue(e);
            }
        }

        return inner.WriteAsync(batch, cancellationToken);
    }
}
