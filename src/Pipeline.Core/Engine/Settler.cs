using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Pipeline.Claiming;
using Pipeline.Sources;

namespace Pipeline.Engine;

/// <summary>
/// The one place a handle's fate is carried out. The delivery's guard lets exactly one settle
/// through (a second is a counted no-op); the keep-alive is stopped, its renewal in progress
/// cancelled and awaited first; a nack forgets the delivery's recorded command id before the
/// source sees it, so the redelivery is not taken for a duplicate. The call gets a token that
/// fires only <see cref="PipelineOptions.SettleTimeout"/> after the hard deadline, never an
/// already-cancelled one, and a call that goes asynchronous is given at most that long, or, for a
/// source that states its own bound (<see cref="ISupportsSettleTimeout"/>), that bound plus it.
/// </summary>
/// <remarks>
/// Everything the call needs is read from the delivery before the first await: a delivery may be
/// freed and pulled into again while its settle is still in progress.
/// </remarks>
internal sealed class Settler<THandle>(
    SourceCapabilities<THandle> source,
    PipelineOptions options,
    PipelineStats stats,
    RecentCommandIds? recent,
    TimeProvider time,
    ILogger logger,
    CancellationToken token)
{
    // Settles that went asynchronous and have not ended; at the end of a run those still pending
    // are counted as settle errors, so the counters add up when RunAsync returns.
    private readonly ConcurrentDictionary<PendingSettle, byte> _pending = new();

    // A source that rides out an outage by retrying (a store's settle, 30 s by default) ends each
    // settle itself within its bound; cutting it off at the engine's 5 s would count a settle that
    // lands a moment later as failed. The engine's own timeout is added as grace, so the source's
    // own error (not this timeout) reports a settle that gives up at its bound.
    private readonly TimeSpan _callTimeout = source.SettleTimeout is { } bounded && bounded.SettleTimeout > TimeSpan.Zero
        ? TimeSpan.FromTicks(Math.Min(bounded.SettleTimeout.Ticks + options.SettleTimeout.Ticks, SettingLimits.Longest.Ticks))
        : options.SettleTimeout;

    /// <summary>Settles <paramref name="delivery"/> unless something already did; never throws for the source's failures.</summary>
    /// <returns>A task that completes when the settle is done (accepted, failed or timed out).</returns>
    public ValueTask SettleAsync(Delivery<THandle> delivery, Settlement settlement, SettleOrigin origin = SettleOrigin.Stage)
    {
        var action = settlement.Action == SettleAction.Terminate && source.Terminate is null ? SettleAction.Nack : settlement.Action;
        var call = new SettleCall(delivery.Handle, action, settlement, delivery.Command?.CommandId, delivery.PulledAt);
        if (!delivery.TryBeginSettle(action))
        {
            if (origin == SettleOrigin.Stage)
            {
                stats.Increment(StatCounter.DuplicateSettles);
                Log.DuplicateSettle(logger, action, call.CommandId);
            }

            return ValueTask.CompletedTask;
        }

        delivery.Span?.SetTag("pipeline.settle", action switch
        {
            SettleAction.Ack => "ack",
            SettleAction.Terminate => "terminate",
            _ => "nack",
        });
        if (origin == SettleOrigin.EndOfRun)
        {
            stats.Increment(StatCounter.DeadlineSettles);
            Log.SettledAtEnd(logger, call.CommandId, settlement.Reason ?? "shutdown deadline");
        }
        else if (origin == SettleOrigin.HandBack)
        {
            stats.Increment(StatCounter.HandedBack);
        }

        if (action == SettleAction.Nack && delivery.RecordedId is { } id)
        {
            recent!.Forget(id, delivery.Slot, delivery.RecordedTicket);
            delivery.RecordedId = null;
        }

        var renewal = delivery.KeepAlive?.StopAsync();
        if (renewal is { IsCompleted: false })
        {
            return SettleAfterRenewalAsync(call, renewal);
        }

        return CallAsync(call);
    }

    /// <summary>Counts every settle still pending as a settle error (the run is ending without it); a late end is not counted again.</summary>
    public void AbandonPending()
    {
        foreach (var pending in _pending.Keys)
        {
            if (pending.TryEnd())
            {
                stats.Increment(StatCounter.SettleErrors);
                Log.SettleTimedOut(logger, pending.Call.Action, pending.Call.CommandId, options.SettleTimeout);
            }
        }
    }

    private async ValueTask SettleAfterRenewalAsync(SettleCall call, Task renewal)
    {
        var pending = Track(call);
        // A renewal that hangs past the budget, ignoring its cancellation, started before this settle; the settle goes on.
        // Half the budget at most, so the call itself still has the other half.
        await renewal.WaitAsync(options.SettleTimeout / 2, time).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        ValueTask started;
        try
        {
            started = StartCall(call);
        }
        catch (Exception ex)
        {
            started = ValueTask.FromException(ex);
        }

        await AwaitCallAsync(started, call, pending).ConfigureAwait(false);
    }

    private ValueTask CallAsync(SettleCall call)
    {
        ValueTask pending;
        try
        {
            pending = StartCall(call);
        }
        catch (Exception ex)
        {
            Failed(call, ex);
            return ValueTask.CompletedTask;
        }

        if (pending.IsCompletedSuccessfully)
        {
            Accepted(call);
            return ValueTask.CompletedTask;
        }

        return AwaitCallAsync(pending, call, Track(call));
    }

    private ValueTask StartCall(SettleCall call) => call.Action switch
    {
        SettleAction.Ack => source.Source.AckAsync(call.Handle, token),
        SettleAction.Terminate => source.Terminate!.TerminateAsync(call.Handle, call.Settlement.Reason ?? "terminated", token),
        _ when source.DelayedNack is { } delayed && call.Settlement.Delay > TimeSpan.Zero => delayed.NackAsync(call.Handle, call.Settlement.Delay, token),
        _ => source.Source.NackAsync(call.Handle, token),
    };

    private async ValueTask AwaitCallAsync(ValueTask call, SettleCall settle, PendingSettle pending)
    {
        try
        {
            await call.AsTask().WaitAsync(_callTimeout, time).ConfigureAwait(false);
            if (pending.TryEnd())
            {
                Accepted(settle);
            }
        }
        catch (TimeoutException)
        {
            if (pending.TryEnd())
            {
                stats.Increment(StatCounter.SettleErrors);
                RecordEnd(settle);
                Log.SettleTimedOut(logger, settle.Action, settle.CommandId, _callTimeout);
            }
        }
        catch (Exception ex)
        {
            if (pending.TryEnd())
            {
                Failed(settle, ex);
            }
        }
        finally
        {
            _pending.TryRemove(pending, out _);
        }
    }

    private PendingSettle Track(SettleCall call)
    {
        var pending = new PendingSettle(call);
        _pending.TryAdd(pending, 0);
        return pending;
    }

    private void Accepted(SettleCall call)
    {
        stats.Increment(call.Action switch
        {
            SettleAction.Ack => StatCounter.Acked,
            SettleAction.Terminate => StatCounter.Terminated,
            _ => StatCounter.Nacked,
        });
        RecordEnd(call);
    }

    private void Failed(SettleCall call, Exception ex)
    {
        stats.Increment(StatCounter.SettleErrors);
        RecordEnd(call);
        Log.SettleFailed(logger, ex, call.Action, call.CommandId);
    }

    private void RecordEnd(in SettleCall call)
    {
        var now = time.GetTimestamp();
        stats.Latency.Record(time.GetElapsedTime(call.PulledAt, now));
        stats.MarkEnded(now);
    }

    /// <summary>One settle, as read from its delivery when it began.</summary>
    private readonly record struct SettleCall(THandle Handle, SettleAction Action, Settlement Settlement, string? CommandId, long PulledAt);

    /// <summary>An asynchronous settle: counted once, by whichever comes first, its end or the end of the run.</summary>
    private sealed class PendingSettle(SettleCall call)
    {
        private int _ended;

        public SettleCall Call { get; } = call;

        public bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;
    }
}
