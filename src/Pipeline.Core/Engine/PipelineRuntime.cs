using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Engine.Stages;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Telemetry;

namespace Pipeline.Engine;

/// <summary>
/// What the five stages share: the options, the source's capabilities, the clock, the counters,
/// the recent-id cache, the settler, the run's three tokens, and the pool of deliveries.
/// </summary>
internal sealed class PipelineRuntime<THandle> : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentBag<Task> _stranded = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abort;
    private readonly CancellationTokenSource _settleBudget;
    private readonly CancellationTokenSource _sinkDeadline;
    private readonly Delivery<THandle>?[] _deliveries;
    private int _created;
    private int _sinkWrites;
    private int _stopRequested;

    public PipelineRuntime(SourceCapabilities<THandle> source, PipelineOptions options, IClaimer claimer, TimeProvider time, ILogger logger)
    {
        Source = source;
        Claimer = claimer;
        ClaimRecorder = claimer as IClaimRecorder;
        Options = options;
        Time = time;
        Logger = logger;
        _abort = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _settleBudget = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _sinkDeadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _deliveries = new Delivery<THandle>?[options.MaxInFlight];
        Recent = options.RecentCommandIds > 0 ? new RecentCommandIds(options.RecentCommandIds, options.MaxInFlight) : null;
        Stats = new PipelineStats(() => Blocks, time);
        Settler = new Settler<THandle>(source, options, Stats, Recent, time, logger, _settleBudget.Token);
        Telemetry = SourceTelemetry.For(source);
    }

    /// <summary>What spans and metrics say about the source.</summary>
    public SourceTelemetry Telemetry { get; }

    /// <summary>Starts <paramref name="delivery"/>'s <c>process</c> span (the caller has checked that someone listens).</summary>
    public void StartSpan(Delivery<THandle> delivery, in ActivityContext parent)
    {
        if (PipelineTelemetry.StartProcess(Telemetry, parent) is { } span)
        {
            Telemetry.Describe(span, Source.Telemetry, delivery.Handle, delivery.Command, Options.WorkerId);
            delivery.Span = span;
        }
    }

    public SourceCapabilities<THandle> Source { get; }

    /// <summary>The claim authority (<see cref="PassThroughClaimer"/> when the source's delivery is the claim).</summary>
    public IClaimer Claimer { get; }

    /// <summary>The claimer, when it keeps its claims outside the source and is told what became of them.</summary>
    public IClaimRecorder? ClaimRecorder { get; }

    public PipelineOptions Options { get; }

    public TimeProvider Time { get; }

    public ILogger Logger { get; }

    public PipelineStats Stats { get; }

    public RecentCommandIds? Recent { get; }

    public Settler<THandle> Settler { get; }

    /// <summary>Fires when a stop is requested: no more pulls.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Fires at the hard deadline: tools, claimer and sink are cancelled.</summary>
    public CancellationToken Abort => _abort.Token;

    /// <summary>Where a finished delivery goes back to: the Pull block's free slots.</summary>
    public Action<Delivery<THandle>> ReturnToPool { get; set; } = static _ => { };

    /// <summary>Ends a delivery's path early: straight to Emit with the events it has (set by the Emit stage).</summary>
    public Action<Delivery<THandle>> Finish { get; set; } = static _ => { };

    /// <summary>True for the first caller only: the stop has begun.</summary>
    public bool TryBeginStop() => Interlocked.Exchange(ref _stopRequested, 1) == 0;

    /// <summary>
    /// After the pulls are closed: arms the hard deadline (<see cref="PipelineOptions.ShutdownTimeout"/>),
    /// then cancels the pulls in progress. Outside any lock, and in this order, because a source's
    /// cancellation callbacks may run inline here, for as long as they like.
    /// </summary>
    public void Stop()
    {
        _abort.CancelAfter(Options.ShutdownTimeout);
        if (Source.StopPulling is { } stopPulling)
        {
            // Set before the stop is visible: a stage that sees the stop waits for this.
            SourceStopped = Task.Run(() => StopPullingAsync(stopPulling));
        }

        _stopping.Cancel();
    }

    /// <summary>
    /// Completes when a source that fetches ahead has stopped (see <see cref="ISupportsStopPulling"/>),
    /// or at the hard deadline if it takes longer: a hand-back waits for it, or the command handed
    /// back could be fetched by this worker again. Completed at once for other sources.
    /// </summary>
    public Task SourceStopped { get; private set; } = Task.CompletedTask;

    /// <summary>Once the source has stopped pulling ahead, hands back what waits in the queues.</summary>
    public async Task StopSourceThenHandBackAsync()
    {
        // Nothing waits in a queue: nothing to hand back here, and no reason for the run to wait for
        // the source's stop (up to a pull request's expiry). What comes later is handed back by the
        // stage it reaches, which waits for the source itself.
        if (!Created().Any(d => d.Position is DeliveryPosition.ClaimQueued or DeliveryPosition.DispatchQueued))
        {
            return;
        }

        await SourceStopped.ConfigureAwait(false);
        await HandBackQueuedAsync().ConfigureAwait(false);
    }

    /// <summary>The stop's sweep (<see cref="StopSourceThenHandBackAsync"/>) once a stop began; completed before.</summary>
    public Task HandBackSweep { get; private set; } = Task.CompletedTask;

    /// <summary>Starts the stop's sweep on the thread pool (a source's stop may block its thread).</summary>
    public void StartHandBackSweep() => HandBackSweep = Task.Run(StopSourceThenHandBackAsync);

    private async Task StopPullingAsync(ISupportsStopPulling source)
    {
        try
        {
            await source.StopPullingAsync().WaitAsync(Abort).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The hand-back goes ahead: a command fetched again meets the stop and is handed back again.
            Log.StopPullingFailed(Logger, ex);
        }
    }

    /// <summary>
    /// Fires a moment before the settle budget after the hard deadline runs out (see
    /// <see cref="SpendSettleBudget"/>). A healthy sink writes the last events (those of commands
    /// cancelled at the deadline) until then; a failing one is given up on at the deadline itself.
    /// </summary>
    public CancellationToken SinkDeadline => _sinkDeadline.Token;

    /// <summary>
    /// The run's wait after the hard deadline, as one chain of timers: <see cref="SinkDeadline"/>
    /// fires with a fifth of <paramref name="budget"/> left, and that fifth is counted from when it
    /// has fired. So a sink that honours its token has returned before <c>RunAsync</c> does (its
    /// caller disposes the sink next; a write still running would meet a disposed stream).
    /// </summary>
    /// <remarks>
    /// Not two timers armed side by side: a timer's callback needs a free pool thread, and after a
    /// stall of the pool (a host blocking its threads) the two fired together, the token a moment
    /// before the run's end instead of a fifth of the budget before it.
    /// </remarks>
    /// <returns>A task that completes when the budget is spent.</returns>
    public Task SpendSettleBudget(TimeSpan budget)
    {
        var sinkShare = budget / 5;
        var spent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = FireSinkDeadlineAsync();
        return spent.Task;

        async Task FireSinkDeadlineAsync()
        {
            await Task.Delay(budget - sinkShare, Time).ConfigureAwait(false);
            // The last share is armed before the token fires: a sink's cancellation callbacks run
            // inline below, for as long as they like, and must not hold up the end of the run.
            _ = Task.Delay(sinkShare, Time).ContinueWith(
                static (_, state) => ((TaskCompletionSource)state!).TrySetResult(),
                spent,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            try
            {
                _sinkDeadline.Cancel();
            }
            catch (AggregateException ex)
            {
                // A sink's own callback threw: its write ends (or not) as the sink makes it; the run goes on.
                Log.SinkDeadlineCallbackFailed(Logger, ex.GetBaseException());
            }
        }
    }

    /// <summary>A sink write begins (Emit): see <see cref="EventsOnTheirWay"/>.</summary>
    public void SinkWriteBegun() => Interlocked.Increment(ref _sinkWrites);

    /// <summary>A sink write has ended, however it ended.</summary>
    public void SinkWriteEnded() => Interlocked.Decrement(ref _sinkWrites);

    /// <summary>Brings the hard deadline forward to now (a stop must already have begun).</summary>
    public void AbortNow() => _abort.Cancel();

    /// <summary>From the hard deadline, the last settles get <see cref="PipelineOptions.SettleTimeout"/> before their token fires.</summary>
    public void StartSettleBudget() => _settleBudget.CancelAfter(Options.SettleTimeout);

    /// <summary>A new pooled delivery, or null when <see cref="PipelineOptions.MaxInFlight"/> are made (the Pull block makes them on first use).</summary>
    public Delivery<THandle>? TryCreateDelivery()
    {
        var slot = Interlocked.Increment(ref _created) - 1;
        if (slot >= _deliveries.Length)
        {
            Interlocked.Decrement(ref _created);
            return null;
        }

        var delivery = new Delivery<THandle>(slot);
        if (Source.KeepAlive is { } keepAlive)
        {
            delivery.KeepAlive = new KeepAlive<THandle>(keepAlive, keepAlive.KeepAliveInterval, Time, Stats, ex => Log.KeepAliveFailed(Logger, ex));
        }

        Volatile.Write(ref _deliveries[slot], delivery);
        return delivery;
    }

    /// <summary>The delivery's path is done (settled, events handed to Emit): record its id as finished and free its slot.</summary>
    public void Release(Delivery<THandle> delivery)
    {
        delivery.EndSpan(); // normally ended when its final events went to Emit; not when it was stranded
        delivery.KeepAlive?.StopAsync(); // already stopped by its settle, unless it was never opened
        if (delivery.RecordedId is not null)
        {
            Recent!.Finish(delivery.Slot);
        }

        var held = delivery.ReleaseHeld();
        delivery.Reset();
        ReturnToPool(delivery);
        if (held is not null)
        {
            // The duplicates that waited for this one are claimed again: now skipped as run, or run.
            foreach (var duplicate in held)
            {
                Reclaim(duplicate);
            }
        }
    }

    /// <summary>Hands a delivery back to Claim (set by the Claim stage).</summary>
    public Action<Delivery<THandle>> Reclaim { get; set; } = static _ => { };

    /// <summary>Takes a delivery waiting in Claim's queue for the stop's hand-back; false when Claim took it first (set by the Claim stage).</summary>
    public Func<Delivery<THandle>, bool> TakeFromClaimQueue { get; set; } = static _ => false;

    /// <summary>
    /// Whether a stop may hand <paramref name="delivery"/> back before its tool starts: always,
    /// unless a claimer granted it a claim that a nack alone would leave held (a claimer that is
    /// not an <see cref="IClaimRecorder"/>, or whose release of this claim failed): that one runs
    /// within the shutdown timeout instead.
    /// </summary>
    public bool CanHandBack(Delivery<THandle> delivery) => !delivery.ClaimedElsewhere || (ClaimRecorder is not null && !delivery.KeepClaim);

    /// <summary>
    /// A stop hands <paramref name="delivery"/> back before its tool starts: its claim released
    /// (when a claimer granted one), then nacked at once so another worker gets it. False when the
    /// claim could not be released: the delivery is kept (<see cref="Delivery{THandle}.KeepClaim"/>)
    /// and its command runs here, since a nack would hand back a command still claimed and lose it.
    /// The caller owns the delivery (a stage working on it, or the sweep that took it from a queue).
    /// </summary>
    public async ValueTask<bool> TryHandBackAsync(Delivery<THandle> delivery)
    {
        try
        {
            await SourceStopped.ConfigureAwait(false);
            if (!delivery.IsOpen)
            {
                return true; // settled meanwhile (the hard deadline): its path ends
            }

            if (delivery.ClaimedElsewhere && !await TryReleaseClaimAsync(delivery).ConfigureAwait(false))
            {
                delivery.KeepClaim = true;
                return false;
            }

            await Settler.SettleAsync(delivery, Settlement.Nack(TimeSpan.Zero, HandBackReason), SettleOrigin.HandBack).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await InternalErrorAsync(delivery, ex, "hand-back").ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>Why a stop nacks a command that has not started.</summary>
    public const string HandBackReason = "handed back at the stop before its tool started";

    /// <summary>Hands a delivery back to Dispatch: one the stop's sweep took whose claim could not be released runs after all (set by the Dispatch stage).</summary>
    public Action<Delivery<THandle>> Redispatch { get; set; } = static _ => { };

    /// <summary>
    /// The stop's sweep: every delivery waiting in the Claim or Dispatch queue that may be handed
    /// back is, now, rather than when a slot frees (a queue behind slow tools could hold it for the
    /// whole shutdown timeout). Those on their way between queues are handed back by the stage
    /// they reach next. The drain waits for the sweep before it completes Dispatch.
    /// </summary>
    public async Task HandBackQueuedAsync()
    {
        List<Task>? pending = null;
        foreach (var delivery in Created())
        {
            var taken = delivery.Position switch
            {
                // A duplicate of a command that ran or runs here is Claim's to skip, not to hand back.
                DeliveryPosition.ClaimQueued => !IsHeldId(delivery) && TakeFromClaimQueue(delivery),
                DeliveryPosition.DispatchQueued => CanHandBack(delivery) && delivery.TryTake(DeliveryPosition.DispatchQueued, DeliveryPosition.HandedBack),
                _ => false,
            };
            if (taken)
            {
                var handBack = HandBackTakenAsync(delivery);
                if (!handBack.IsCompletedSuccessfully)
                {
                    (pending ??= []).Add(handBack.AsTask());
                }
            }
        }

        if (pending is not null)
        {
            await Task.WhenAll(pending).ConfigureAwait(false);
        }
    }

    /// <summary>Whether the command id of a delivery not yet claimed is held in the recent-id cache (a duplicate).</summary>
    public bool IsHeldId(Delivery<THandle> delivery) =>
        Recent is { } recent && delivery.Outcome is { Kind: ClaimOutcomeKind.Claimed, Command: { } command }
        && recent.Peek(command.CommandId, out _, out _) != RecentIdState.Recorded;

    private async ValueTask HandBackTakenAsync(Delivery<THandle> delivery)
    {
        if (await TryHandBackAsync(delivery).ConfigureAwait(false))
        {
            Finish(delivery);
        }
        else
        {
            Redispatch(delivery); // its claim is still held: it runs here after all
        }
    }

    /// <summary>Tells the claimer its claim is given up (before the nack); false, logged and counted, when that failed.</summary>
    public async ValueTask<bool> TryReleaseClaimAsync(Delivery<THandle> delivery)
    {
        if (ClaimRecorder is not { } recorder)
        {
            return false;
        }

        try
        {
            await recorder.ReleaseAsync(delivery.Outcome, Abort).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex)
        {
            Stats.Increment(StatCounter.ClaimRecordErrors);
            Log.ClaimRecordFailed(Logger, ex, "release", delivery.Command?.CommandId);
            return false;
        }
    }

    /// <summary>Tells the claimer the command's tool ended for good; a failure is logged and counted, the settle goes ahead.</summary>
    public async ValueTask RecordClaimOutcomeAsync(Delivery<THandle> delivery, bool succeeded)
    {
        if (ClaimRecorder is not { } recorder || !delivery.ClaimedElsewhere)
        {
            return;
        }

        try
        {
            await recorder.RecordOutcomeAsync(delivery.Outcome, succeeded, Abort).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Stats.Increment(StatCounter.ClaimRecordErrors);
            Log.ClaimRecordFailed(Logger, ex, succeeded ? "completed" : "failed", delivery.Command?.CommandId);
        }
    }

    /// <summary>The delivery in pool slot <paramref name="slot"/>.</summary>
    public Delivery<THandle> DeliveryAt(int slot) => Volatile.Read(ref _deliveries[slot])!;

    /// <summary>
    /// A delivery could not be handed to the next block (it faulted): settle it (nack) if still
    /// open, count its events as dropped, and free it.
    /// </summary>
    public async ValueTask StrandAsync(Delivery<THandle> delivery, string block)
    {
        Stats.Add(StatCounter.EventsDropped, delivery.EventCount - delivery.EventsPosted);
        if (delivery.IsOpen)
        {
            await Settler.SettleAsync(delivery, Settlement.Nack(TimeSpan.Zero, $"the {block} block faulted"), SettleOrigin.EndOfRun).ConfigureAwait(false);
        }

        Release(delivery);
    }

    /// <summary>Hands <paramref name="delivery"/> to <paramref name="block"/>, or strands it when the block no longer accepts.</summary>
    public void Forward<T>(StageBlock<T> block, T message, Delivery<THandle> delivery, string blockName)
    {
        if (!block.Post(message))
        {
            var stranded = StrandAsync(delivery, blockName);
            if (!stranded.IsCompletedSuccessfully)
            {
                // Awaited by the end-of-run sweep: the delivery is no longer open (its settle has
                // begun), so the sweep would not wait for it, and the run could end before it is settled.
                _stranded.Add(stranded.AsTask());
            }
        }
    }

    /// <summary>
    /// A stage's own handler failed on <paramref name="delivery"/> (a bug): count and log it, and
    /// settle the delivery (nack) so its handle is not left open. The stage then passes it on.
    /// </summary>
    public ValueTask InternalErrorAsync(Delivery<THandle> delivery, Exception exception, string block)
    {
        Stats.Increment(StatCounter.InternalErrors);
        Log.InternalError(Logger, exception, block, delivery.Command?.CommandId);
        return delivery.IsOpen
            ? Settler.SettleAsync(delivery, Settlement.Nack(DelayFor(delivery.Command), $"internal error in {block}"))
            : ValueTask.CompletedTask;
    }

    /// <summary>Nacks every delivery still open (the hard deadline, or items a faulted block dropped).</summary>
    public Task SettleOpenAsync(string reason)
    {
        List<Task>? pending = null;
        var open = 0;
        foreach (var delivery in Created())
        {
            if (!delivery.IsOpen)
            {
                continue;
            }

            open++;
            Stats.Add(StatCounter.EventsDropped, delivery.EventCount - delivery.EventsPosted);
            var settle = Settler.SettleAsync(delivery, Settlement.Nack(TimeSpan.Zero, reason), SettleOrigin.EndOfRun);
            if (!settle.IsCompletedSuccessfully)
            {
                (pending ??= []).Add(settle.AsTask());
            }
        }

        if (open > 0)
        {
            Log.SettledAtEndCount(Logger, open, reason);
        }

        // The settle budget runs from here, when every last settle has been started, not from the
        // deadline itself: a sweep that starts late still gives each settle its whole budget.
        if (Abort.IsCancellationRequested)
        {
            StartSettleBudget();
        }

        while (_stranded.TryTake(out var stranded))
        {
            (pending ??= []).Add(stranded);
        }

        return pending is null ? Task.CompletedTask : Task.WhenAll(pending);
    }

    /// <summary>How many deliveries are open now.</summary>
    public int CountOpen()
    {
        return Created().Count(delivery => delivery.IsOpen);
    }

    /// <summary>Where each delivery is, counted by block (a poll for progress displays and gauges, not the hot path).</summary>
    public PipelineBlocks Blocks
    {
        get
        {
            Span<int> counts = stackalloc int[(int)DeliveryPosition.HandedBack + 1];
            var created = 0;
            foreach (var delivery in Created())
            {
                counts[(int)delivery.Position]++;
                created++;
            }

            counts[(int)DeliveryPosition.Free] += Options.MaxInFlight - created;
            counts[(int)DeliveryPosition.ClaimQueued] += counts[(int)DeliveryPosition.Held];
            counts[(int)DeliveryPosition.EmitQueued] += counts[(int)DeliveryPosition.HandedBack];
            return new PipelineBlocks(
                new BlockLoad(counts[(int)DeliveryPosition.Free], counts[(int)DeliveryPosition.Pulling]),
                new BlockLoad(counts[(int)DeliveryPosition.ClaimQueued], counts[(int)DeliveryPosition.Claiming]),
                new BlockLoad(counts[(int)DeliveryPosition.DecideQueued], counts[(int)DeliveryPosition.Deciding]),
                new BlockLoad(counts[(int)DeliveryPosition.DispatchQueued], counts[(int)DeliveryPosition.Dispatching]),
                new BlockLoad(counts[(int)DeliveryPosition.EmitQueued], counts[(int)DeliveryPosition.Emitting]));
        }
    }

    /// <summary>
    /// Whether events are still on their way to the sink after the deadline: a delivery waiting in
    /// a queue or in Emit, or a batch being written. One held by a callee that ignores its token
    /// does not count, unless <paramref name="includeRunningTools"/>: a tool cancelled at the deadline
    /// is given a moment to end and report (a shell tool killing its process group).
    /// </summary>
    public bool EventsOnTheirWay(bool includeRunningTools = false)
    {
        // A batch being written: its deliveries were freed when it was made.
        if (Volatile.Read(ref _sinkWrites) > 0)
        {
            return true;
        }

        foreach (var delivery in Created())
        {
            // Not a held duplicate: it has no events, and waits for an original that may never end.
            if (delivery.Position is DeliveryPosition.ClaimQueued or DeliveryPosition.DecideQueued
                or DeliveryPosition.DispatchQueued or DeliveryPosition.EmitQueued or DeliveryPosition.Emitting
                || (includeRunningTools && delivery.Position is DeliveryPosition.Dispatching))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The deliveries made so far (the pool's slots fill in order; a slot being made may still read null).</summary>
    private IEnumerable<Delivery<THandle>> Created()
    {
        var created = Math.Min(Volatile.Read(ref _created), _deliveries.Length);
        for (var i = 0; i < created; i++)
        {
            if (Volatile.Read(ref _deliveries[i]) is { } delivery)
            {
                yield return delivery;
            }
        }
    }

    public TimeSpan DelayFor(Command? command) => Options.NackBackoff.DelayFor(command?.Attempts ?? 0);

    /// <summary>Adds one event to <paramref name="delivery"/>; it goes to the sink when the delivery reaches Emit.</summary>
    public void AddEvent(Delivery<THandle> delivery, string eventType, string status, TimeSpan? duration = null, JsonElement result = default, string? error = null, DateTimeOffset? createdAt = null)
    {
        var command = delivery.Command;
        if (delivery.Span is { } span)
        {
            // The span says how the item ended: its last event, and an error status when it failed.
            span.SetTag("pipeline.outcome", eventType);
            if (error is not null && status == EventStatus.Failed)
            {
                span.SetStatus(ActivityStatusCode.Error, error);
            }
        }

        delivery.AddEvent(new PipelineEvent
        {
            EventType = eventType,
            Status = status,
            CreatedAt = createdAt ?? Time.GetUtcNow(),
            ExecutionId = command?.ExecutionId ?? 0,
            Step = command?.Step,
            CommandId = command?.CommandId,
            ToolKind = command?.ToolKind,
            WorkerId = Options.WorkerId,
            Attempts = command?.Attempts ?? 0,
            DurationMs = duration?.TotalMilliseconds,
            Result = result,
            Error = error,
        });
    }

    /// <summary>
    /// Frees the deliveries' timers and tool cancellations once the run has drained. The run's
    /// token sources stay: a late <see cref="RequestStop"/> must not find them disposed.
    /// </summary>
    public void Dispose()
    {
        foreach (var delivery in Created())
        {
            delivery.KeepAlive?.Dispose();
            delivery.Tools?.Dispose();
        }
    }
}
