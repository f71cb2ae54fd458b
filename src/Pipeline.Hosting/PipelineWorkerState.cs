using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Modules;

namespace Pipeline.Hosting;

/// <summary>
/// The running worker as the host's owner sees it (a singleton): its live counts, how it ended,
/// and a way to stop at once. <c>pipeline worker</c> reads it for its progress and summary.
/// </summary>
public sealed class PipelineWorkerState
{
    private readonly TaskCompletionSource<PipelineStats> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action? _stopNow;
    private volatile bool _stopNowRequested;

    /// <summary>Completes with the pipeline's live counts once it is built (faults if building failed).</summary>
    public Task<PipelineStats> Started => _started.Task;

    /// <summary>Completes when the pipeline has ended and its events are flushed (never faults; see <see cref="Fault"/>).</summary>
    public Task Completion => _completion.Task;

    /// <summary>What ended the worker with an error (a faulted block, a source that could not be opened), or null.</summary>
    public Exception? Fault { get; private set; }

    /// <summary>Whether the hard shutdown deadline cut work off (those deliveries were nacked, to be redelivered).</summary>
    public bool DeadlineReached { get; private set; }

    /// <summary>Whether the source ran out by itself (the file was read, the NATS source went idle).</summary>
    public bool SourceExhausted { get; private set; }

    /// <summary>
    /// After the source ended by itself (an idle end): what its backend still held as the worker
    /// ended (a NATS consumer's messages awaiting an ack or pending, by the server's count); null
    /// for any other end, for a backend that holds nothing back (a file), or when it could not be read.
    /// </summary>
    public WorkLeft? WorkLeft { get; internal set; }

    /// <summary>Stops at once: the hard deadline is now; what is still open is nacked.</summary>
    public void StopNow()
    {
        _stopNowRequested = true;
        Volatile.Read(ref _stopNow)?.Invoke();
    }

    internal void Attach<THandle>(CommandPipeline<THandle> pipeline)
    {
        Volatile.Write(ref _stopNow, pipeline.StopNow);
        _started.TrySetResult(pipeline.Stats);
        if (_stopNowRequested)
        {
            pipeline.StopNow(); // asked before the pipeline existed
        }
    }

    internal void Ended(bool deadlineReached, bool exhausted)
    {
        DeadlineReached = deadlineReached;
        SourceExhausted = exhausted;
    }

    internal void Fail(Exception fault)
    {
        Fault ??= fault;
        _started.TrySetException(fault);
    }

    internal void Complete()
    {
        _started.TrySetException(new InvalidOperationException("The worker ended before its pipeline was built."));
        _completion.TrySetResult();
    }
}

/// <summary>
/// Optional hooks (register one as a singleton): wrap the event sink, e.g. to keep failures for a
/// summary. The wrapper must pass every batch on.
/// </summary>
public sealed class PipelineWorkerHooks
{
    /// <summary>Wraps the configured event sink; null leaves it as is.</summary>
    public Func<IEventSink, IEventSink>? WrapSink { get; init; }
}
