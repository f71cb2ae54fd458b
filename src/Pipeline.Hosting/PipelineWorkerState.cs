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

    /// <summary>How the run went; <see cref="PipelineWorkerOutcome.Running"/> until <see cref="Completion"/> completes.</summary>
    public PipelineWorkerOutcome Outcome { get; private set; }

    /// <summary>
    /// The exit code the outcome gives, as <c>pipeline worker</c> exits: 0 every command done
    /// (or stopped before anything was pulled), 1 some failed or the worker faulted, 2 the settings
    /// cannot work, 3 an idle end while the backend still holds work, 128 + the signal (143 for
    /// SIGTERM, 130 for Ctrl+C) when a stop cut work off or left part of a commands file unread, 1
    /// when a stop from code did. The worker
    /// sets <see cref="Environment.ExitCode"/> to it unless <see cref="PipelineWorkerOptions.SetExitCode"/>
    /// is off. 0 while running.
    /// </summary>
    public int ExitCode { get; private set; }

    /// <summary>Every setting that cannot work, each naming its key as typed, when the worker refused to start (<see cref="PipelineWorkerOutcome.ConfigurationError"/>); empty otherwise.</summary>
    public IReadOnlyList<string> ConfigurationErrors { get; private set; } = [];

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

    internal void Ended(bool deadlineReached, bool exhausted, bool leftUnread = false)
    {
        DeadlineReached = deadlineReached;
        SourceExhausted = exhausted;
        LeftUnread = leftUnread;
    }

    /// <summary>Whether a stop ended the run before a source that ends by itself (a commands file) was read to its end: its rest was not run.</summary>
    public bool LeftUnread { get; private set; }

    internal void Fail(Exception fault)
    {
        Fault ??= fault;
        _started.TrySetException(fault);
    }

    internal void Refuse(IReadOnlyList<string> errors)
    {
        ConfigurationErrors = errors;
        Conclude(PipelineWorkerOutcome.ConfigurationError, PipelineWorkerOutcome.ConfigurationError.ExitCode());
        _started.TrySetException(new InvalidOperationException($"The worker's settings cannot work: {string.Join(" ", errors)}"));
    }

    /// <summary>Decides the outcome from how the run ended (the CLI's order: a fault, work cut off, failures, work left).</summary>
    internal void Conclude(PipelineStats? stats, int? signal)
    {
        if (Fault is not null)
        {
            Conclude(PipelineWorkerOutcome.Faulted, PipelineWorkerOutcome.Faulted.ExitCode());
        }
        else if (DeadlineReached || LeftUnread)
        {
            Conclude(PipelineWorkerOutcome.CutOff, signal is { } s ? 128 + s : PipelineWorkerOutcome.CutOff.ExitCode());
        }
        else if (stats is not null && stats.Failed + stats.ClaimFailures + stats.Terminated + stats.EventsDropped + stats.SettleErrors > 0)
        {
            Conclude(PipelineWorkerOutcome.SomeFailed, PipelineWorkerOutcome.SomeFailed.ExitCode());
        }
        else if (WorkLeft is { HoldsWork: true })
        {
            Conclude(PipelineWorkerOutcome.WorkLeft, PipelineWorkerOutcome.WorkLeft.ExitCode());
        }
        else
        {
            Conclude(PipelineWorkerOutcome.Succeeded, PipelineWorkerOutcome.Succeeded.ExitCode());
        }
    }

    private void Conclude(PipelineWorkerOutcome outcome, int exitCode) => (Outcome, ExitCode) = (outcome, exitCode);

    internal void Complete()
    {
        _started.TrySetException(new InvalidOperationException("The worker ended before its pipeline was built."));
        _completion.TrySetResult();
    }
}

/// <summary>How a hosted worker's run went (<see cref="PipelineWorkerState.Outcome"/>), each with its exit code (<see cref="PipelineWorkerOutcomes.ExitCode"/>).</summary>
public enum PipelineWorkerOutcome
{
    /// <summary>Not ended yet.</summary>
    Running,

    /// <summary>Every command pulled was done (or skipped as handled elsewhere), and a source that ends by itself (a file) was read to its end; or a worker on a source that runs until stopped was stopped before it pulled anything. Exit code 0.</summary>
    Succeeded,

    /// <summary>Some commands failed: a tool failure, a malformed command, an unknown tool, a failed claim, a dropped event, a settle the source did not confirm. Exit code 1.</summary>
    SomeFailed,

    /// <summary>The settings cannot work (<see cref="PipelineWorkerState.ConfigurationErrors"/>); nothing was pulled and no file was touched. Exit code 2.</summary>
    ConfigurationError,

    /// <summary>An idle end with nothing failed here while the backend still holds work (<see cref="PipelineWorkerState.WorkLeft"/>). Exit code 3.</summary>
    WorkLeft,

    /// <summary>A stop's shutdown timeout cut work off (nacked, to be redelivered), or a stop left part of a source that ends by itself unread (<see cref="PipelineWorkerState.LeftUnread"/>: the rest of a commands file), as <c>pipeline run</c> says. Exit code 128 + the signal that stopped the host (143 SIGTERM, 130 SIGINT), or 1 for a stop from code.</summary>
    CutOff,

    /// <summary>The worker stopped on an error (<see cref="PipelineWorkerState.Fault"/>): a source that could not be opened, a faulted block. Exit code 1.</summary>
    Faulted,
}

/// <summary>The exit codes of <see cref="PipelineWorkerOutcome"/>, the same as <c>pipeline</c>'s.</summary>
public static class PipelineWorkerOutcomes
{
    /// <summary>The exit code of <paramref name="outcome"/>; for <see cref="PipelineWorkerOutcome.CutOff"/> without a signal, 1.</summary>
    public static int ExitCode(this PipelineWorkerOutcome outcome) => outcome switch
    {
        PipelineWorkerOutcome.Running or PipelineWorkerOutcome.Succeeded => 0,
        PipelineWorkerOutcome.ConfigurationError => 2,
        PipelineWorkerOutcome.WorkLeft => 3,
        _ => 1,
    };
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
