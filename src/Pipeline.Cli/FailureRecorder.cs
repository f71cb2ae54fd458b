using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Pipeline.Events;

namespace Pipeline.Cli;

/// <summary>
/// Passes events on to the real sink, keeps the first few failures for the summary, and counts
/// the tool runs that started and never ended (a stop that cut them off).
/// </summary>
/// <remarks>
/// The Emit block hands a failed batch over again (its retries): a batch's starts and ends are
/// counted once, when a write of it succeeds, and a failure already kept is not kept twice. A
/// batch that is dropped in the end is not counted: the run reports its events as dropped.
/// </remarks>
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
            // Kept before the write: a failure is worth listing even when its event cannot be written.
            if (_failures.Count < keep && e.EventType is EventTypes.CommandFailed or EventTypes.ClaimFailed && !_failures.Contains(e))
            {
                _failures.Enqueue(e);
            }
        }

        var write = inner.WriteAsync(batch, cancellationToken);
        if (write.IsCompletedSuccessfully)
        {
            Count(batch.Span);
            return ValueTask.CompletedTask;
        }

        return CountWhenWrittenAsync(write, batch);
    }

    // Pooled: with a sink that completes asynchronously (NATS) every batch comes this way.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CountWhenWrittenAsync(ValueTask write, ReadOnlyMemory<PipelineEvent> batch)
    {
        await write.ConfigureAwait(false);
        Count(batch.Span);
    }

    private void Count(ReadOnlySpan<PipelineEvent> batch)
    {
        long started = 0, ended = 0;
        foreach (var e in batch)
        {
            switch (e.EventType)
            {
                case EventTypes.CommandStarted: started++; break;
                case EventTypes.CommandCompleted or EventTypes.CommandFailed: ended++; break;
            }
        }

        Interlocked.Add(ref _started, started);
        Interlocked.Add(ref _ended, ended);
    }
}
