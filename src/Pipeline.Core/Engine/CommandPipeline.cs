using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Claiming;
using Pipeline.Dispatch;
using Pipeline.Engine.Stages;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Telemetry;

namespace Pipeline.Engine;

/// <summary>
/// The worker: Pull → Claim → Ack-decision → Dispatch → Emit, five TPL Dataflow blocks. Every
/// pulled handle is settled (acked, nacked or terminated) exactly once, on every path.
/// </summary>
/// <remarks>
/// Each pulled item is a delivery that owns its handle until it is settled, and its in-flight
/// slot until its events are handed to the sink: at most <see cref="PipelineOptions.MaxInFlight"/>
/// items are held, and pulling waits for a free slot. Stopping stops the pulls and lets the
/// blocks drain for <see cref="PipelineOptions.ShutdownTimeout"/>; at that hard deadline the
/// tools, claimer and sink are cancelled, every delivery still open is nacked, and
/// <see cref="RunAsync"/> returns within <see cref="PipelineOptions.SettleTimeout"/> more, whatever
/// a callee does with its token.
/// </remarks>
/// <typeparam name="THandle">The source's handle type.</typeparam>
public sealed class CommandPipeline<THandle>
{
    private readonly PipelineRuntime<THandle> _runtime;
    private readonly PullStage<THandle> _pull;
    private readonly ClaimStage<THandle> _claim;
    private readonly AckDecisionStage<THandle> _decide;
    private readonly DispatchStage<THandle> _dispatch;
    private readonly EmitStage<THandle> _emit;
    private readonly TaskCompletionSource _deadline = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Exception? _fault;
    private int _faultedBlocks;
    private int _started;

    /// <summary>Builds a pipeline; nothing runs until <see cref="RunAsync"/>.</summary>
    /// <param name="source">Where commands come from.</param>
    /// <param name="tools">The tools dispatch routes to by <c>tool_kind</c>.</param>
    /// <param name="sink">Where events go.</param>
    /// <param name="options">Tuning; defaults when null. Validated here.</param>
    /// <param name="claimer">The claim authority; <see cref="PassThroughClaimer"/> when null.</param>
    /// <param name="timeProvider">The clock for timeouts, backoff, keep-alive and events; the system clock when null.</param>
    /// <param name="logger">Diagnostics for errors the events cannot carry.</param>
    public CommandPipeline(
        ICommandSource<THandle> source,
        ToolRegistry tools,
        IEventSink sink,
        PipelineOptions? options = null,
        IClaimer? claimer = null,
        TimeProvider? timeProvider = null,
        ILogger? logger = null)
    {
        var capabilities = SourceCapabilities<THandle>.Discover(source);
        ArgumentNullException.ThrowIfNull(tools);
        ArgumentNullException.ThrowIfNull(sink);
        options ??= new PipelineOptions();
        options.Validate();
        if (capabilities.KeepAlive is { KeepAliveInterval: var interval } && interval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(source), interval, $"The source's KeepAliveInterval must be positive (it is {interval}).");
        }

        _runtime = new PipelineRuntime<THandle>(
            capabilities, options, claimer ?? PassThroughClaimer.Instance, timeProvider ?? TimeProvider.System, logger is null ? NullLogger.Instance : new GuardedLogger(logger));

        // Built from the end, so each stage knows the next.
        _emit = new EmitStage<THandle>(_runtime, sink);
        _dispatch = new DispatchStage<THandle>(_runtime, tools, _emit);
        _decide = new AckDecisionStage<THandle>(_runtime, _dispatch);
        _claim = new ClaimStage<THandle>(_runtime, _runtime.Claimer, _decide);
        _pull = new PullStage<THandle>(_runtime, _claim);
    }

    /// <summary>Live counters and per-block load.</summary>
    public PipelineStats Stats => _runtime.Stats;

    /// <summary>
    /// Whether the hard deadline came before the run drained: tools still running were cancelled
    /// and open deliveries nacked. False when everything drained in time.
    /// </summary>
    public bool DeadlineReached => _deadline.Task.IsCompleted;

    /// <summary>The options in force.</summary>
    public PipelineOptions Options => _runtime.Options;

    /// <summary>
    /// Runs until the source is exhausted or <paramref name="stoppingToken"/> fires, then drains
    /// (see the remarks on the class) and returns. Every pulled handle is settled when it returns.
    /// A pipeline runs once.
    /// </summary>
    /// <exception cref="PipelineFaultedException">A block faulted; what could be settled was.</exception>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("A pipeline runs once; build a new one to run again.");
        }

        using var telemetry = PipelineTelemetry.Track(_runtime.Stats, _runtime.Options.WorkerId, _runtime.Telemetry);
        await using var stop = stoppingToken.Register(static state => ((CommandPipeline<THandle>)state!).RequestStop(), this);
        await using var deadline = _runtime.Abort.UnsafeRegister(static state => ((CommandPipeline<THandle>)state!).OnDeadline(), this);
        var stages = Stages;
        for (var i = 0; i < stages.Length; i++)
        {
            WatchForFault(stages[i].Completion, i, stages[i].Name);
        }

        _pull.Start();
        var drained = DrainAsync();
        var clean = await Task.WhenAny(drained, _deadline.Task).ConfigureAwait(false) == drained;
        // The sweeps run on the thread pool: a source whose nack blocks its thread must not hold
        // this one past the settle budget.
        if (clean)
        {
            // Normally a no-op: only items a faulted block dropped are still open here.
            var swept = Task.Run(() => _runtime.SettleOpenAsync("a block faulted"));
            await Task.WhenAny(swept, Task.Delay(_runtime.Options.SettleTimeout, _runtime.Time)).ConfigureAwait(false);
            if (swept.IsCompleted)
            {
                _runtime.Dispose();
            }
        }
        else
        {
            // The hard deadline: whatever is still open is nacked now, and the last settles (and a
            // drain that may yet finish) get the settle budget, not a moment more.
            // Once every open delivery is settled, a drain still held by a callee that ignores its
            // token is given a moment, not the whole budget: its deliveries are settled already.
            var budget = _runtime.Options.SettleTimeout;
            var grace = TimeSpan.FromTicks(Math.Min(budget.Ticks, TimeSpan.FromMilliseconds(100).Ticks));

            // The sink's token fires with a fifth of the budget left, counted from when it fired: a
            // sink that honours its token has returned by the time this does, so no write outlives
            // the run (the caller disposes the sink next).
            var spent = _runtime.SpendSettleBudget(budget);
            var swept = Task.Run(() => _runtime.SettleOpenAsync("shutdown deadline"));
            var sweptThenQuiet = swept.ContinueWith(_ => QuietAsync(drained, grace), TaskScheduler.Default).Unwrap();
            await Task.WhenAny(sweptThenQuiet, spent).ConfigureAwait(false);
        }

        if (_runtime.Stats.HandedBack is > 0 and var handedBack)
        {
            Log.HandedBack(_runtime.Logger, handedBack);
        }

        // What has not ended by now is counted as a settle error, or a dropped event, so the counters add up on return.
        _runtime.Settler.AbandonPending();
        _emit.AbandonPendingWrites();

        // The watchers run asynchronously; a fault the drain already went past is still reported.
        for (var i = 0; i < stages.Length; i++)
        {
            if (stages[i].Completion.IsFaulted)
            {
                OnFault(i, stages[i].Name, stages[i].Completion.Exception!.GetBaseException());
            }
        }

        if (_fault is { } fault)
        {
            throw new PipelineFaultedException("A pipeline block faulted; the run stopped and settled what it could.", fault);
        }
    }

    /// <summary>Stops pulling and starts the shutdown deadline. <see cref="RunAsync"/> returns once drained.</summary>
    public void RequestStop()
    {
        if (_runtime.TryBeginStop())
        {
            // Close first: a pull cancelled below may complete inline, and must find no loop to go on.
            _pull.Close();
            _runtime.Stop();

            // What waits in a queue and has not started goes back at once (once the source has
            // stopped fetching ahead, so it is not fetched here again); running tools drain.
            _runtime.StartHandBackSweep();
        }
    }

    /// <summary>
    /// Stops at once: as <see cref="RequestStop"/>, with the hard deadline now instead of after
    /// <see cref="PipelineOptions.ShutdownTimeout"/>. Tools, claimer and sink are cancelled, what
    /// is still open is nacked, and <see cref="RunAsync"/> returns within
    /// <see cref="PipelineOptions.SettleTimeout"/>. For a second Ctrl+C.
    /// </summary>
    public void StopNow()
    {
        RequestStop();
        _runtime.AbortNow();
    }

    /// <summary>
    /// After the deadline's sweep: the drain gets a moment, and longer while events are still on
    /// their way to a healthy sink (the failures of cancelled commands get written, not dropped).
    /// </summary>
    private async Task QuietAsync(Task drained, TimeSpan grace)
    {
        // Tools cancelled at the deadline get up to a quarter of the budget (at most 1 s) to end and
        // report; one that ignores its token is not waited for past that.
        var budget = _runtime.Options.SettleTimeout;
        var toolGrace = Task.Delay(TimeSpan.FromTicks(Math.Min(budget.Ticks / 4, TimeSpan.TicksPerSecond)), _runtime.Time);
        await Task.WhenAny(drained, Task.Delay(grace, _runtime.Time)).ConfigureAwait(false);
        while (!drained.IsCompleted && _runtime.EventsOnTheirWay(includeRunningTools: !toolGrace.IsCompleted))
        {
            await Task.WhenAny(drained, Task.Delay(TimeSpan.FromMilliseconds(10), _runtime.Time)).ConfigureAwait(false);
        }
    }

    /// <summary>Completes each block after the one before it has finished, so nothing is handed to a finished block.</summary>
    private async Task DrainAsync()
    {
        await _pull.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _claim.CompleteWhenEmptyAsync().ConfigureAwait(false);
        await _claim.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _decide.Complete();
        await _decide.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        // A stop's sweep may still be handing back what it took from the queues (and giving back
        // to Dispatch what it could not release): Dispatch and Emit stay open until it is done.
        await _runtime.HandBackSweep.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _dispatch.Complete();
        await _dispatch.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _emit.Complete();
        await _emit.Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private void OnDeadline()
    {
        Log.DeadlineReached(_runtime.Logger, _runtime.CountOpen());
        _deadline.TrySetResult();
    }

    private (Task Completion, string Name)[] Stages =>
    [
        (_pull.Completion, PullStage<THandle>.Name),
        (_claim.Completion, ClaimStage<THandle>.Name),
        (_decide.Completion, AckDecisionStage<THandle>.Name),
        (_dispatch.Completion, DispatchStage<THandle>.Name),
        (_emit.Completion, EmitStage<THandle>.Name),
    ];

    private void WatchForFault(Task completion, int index, string block) =>
        completion.ContinueWith(
            static (task, state) =>
            {
                var (pipeline, index, block) = ((CommandPipeline<THandle>, int, string))state!;
                pipeline.OnFault(index, block, task.Exception!.GetBaseException());
            },
            (this, index, block),
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    /// <summary>A block faulted: counted and logged once per block; the run stops and <see cref="RunAsync"/> will throw.</summary>
    private void OnFault(int index, string block, Exception exception)
    {
        if ((Interlocked.Or(ref _faultedBlocks, 1 << index) & (1 << index)) != 0)
        {
            return;
        }

        Interlocked.CompareExchange(ref _fault, exception, null);
        _runtime.Stats.Increment(StatCounter.BlockFaults);
        Log.BlockFaulted(_runtime.Logger, exception, block);
        RequestStop();
    }

    /// <summary>Faults one block as a delegate escaping its own handler would (for tests: the fault path has no other way in).</summary>
    internal void FaultBlock(string block, Exception exception)
    {
        switch (block)
        {
            case PullStage<THandle>.Name: _pull.Fault(exception); break;
            case ClaimStage<THandle>.Name: _claim.Fault(exception); break;
            case AckDecisionStage<THandle>.Name: _decide.Fault(exception); break;
            case DispatchStage<THandle>.Name: _dispatch.Fault(exception); break;
            default: _emit.Fault(exception); break;
        }
    }
}

/// <summary>A pipeline block faulted. <see cref="CommandPipeline{THandle}.RunAsync"/> settled what it could before throwing this.</summary>
public sealed class PipelineFaultedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PipelineFaultedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public PipelineFaultedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the block's fault.</summary>
    public PipelineFaultedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
