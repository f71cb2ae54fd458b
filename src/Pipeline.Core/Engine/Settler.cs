using Microsoft.Extensions.Logging;
using Pipeline.Claiming;
using Pipeline.Sources;

namespace Pipeline.Engine;

/// <summary>
/// The one place a handle's fate is carried out. The delivery's guard lets exactly one settle
/// through (a second is a counted no-op); the keep-alive is stopped and its renewal in progress
/// awaited first; a nack forgets the delivery's recorded command id before the source sees it, so
/// the redelivery is not taken for a duplicate. The call gets a token that fires only
/// <see cref="PipelineOptions.SettleTimeout"/> after the hard deadline, never an already-cancelled
/// one, and a call that goes asynchronous is given at most that long.
/// </summary>
internal sealed class Settler<THandle>(
    SourceCapabilities<THandle> source,
    PipelineOptions options,
    PipelineStats stats,
    RecentCommandIds? recent,
    TimeProvider time,
    ILogger logger,
    CancellationToken token)
{
    /// <summary>Settles <paramref name="delivery"/> unless something already did; never throws for the source's failures.</summary>
    /// <returns>A task that completes when the settle is done (accepted, failed or timed out).</returns>
    public ValueTask SettleAsync(Delivery<THandle> delivery, Settlement settlement, bool atEnd = false)
    {
        var action = settlement.Action == SettleAction.Terminate && source.Terminate is null ? SettleAction.Nack : settlement.Action;
        if (!delivery.TryBeginSettle(action))
        {
            if (!atEnd)
            {
                stats.Increment(StatCounter.DuplicateSettles);
                Log.DuplicateSettle(logger, action, delivery.Command?.CommandId);
            }

            return ValueTask.CompletedTask;
        }

        if (atEnd)
        {
            stats.Increment(StatCounter.DeadlineSettles);
            Log.SettledAtEnd(logger, delivery.Command?.CommandId, settlement.Reason ?? "shutdown deadline");
        }

        if (action == SettleAction.Nack && delivery.RecordedId is { } id)
        {
            recent!.Forget(id, delivery.Slot, delivery.RecordedTicket);
        }

        var renewal = delivery.KeepAlive?.StopAsync();
        if (renewal is { IsCompleted: false })
        {
            return SettleAfterRenewalAsync(delivery, action, settlement, renewal);
        }

        return CallAsync(delivery, action, settlement);
    }

    private async ValueTask SettleAfterRenewalAsync(Delivery<THandle> delivery, SettleAction action, Settlement settlement, Task renewal)
    {
        // A renewal that hangs past the budget started before this settle; the settle goes on.
        await renewal.WaitAsync(options.SettleTimeout, time).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await CallAsync(delivery, action, settlement).ConfigureAwait(false);
    }

    private ValueTask CallAsync(Delivery<THandle> delivery, SettleAction action, Settlement settlement)
    {
        ValueTask call;
        try
        {
            call = action switch
            {
                SettleAction.Ack => source.Source.AckAsync(delivery.Handle, token),
                SettleAction.Terminate => source.Terminate!.TerminateAsync(delivery.Handle, settlement.Reason ?? "terminated", token),
                _ when source.DelayedNack is { } delayed && settlement.Delay > TimeSpan.Zero => delayed.NackAsync(delivery.Handle, settlement.Delay, token),
                _ => source.Source.NackAsync(delivery.Handle, token),
            };
        }
        catch (Exception ex)
        {
            Failed(delivery, action, ex);
            return ValueTask.CompletedTask;
        }

        if (call.IsCompletedSuccessfully)
        {
            Accepted(delivery, action);
            return ValueTask.CompletedTask;
        }

        return AwaitCallAsync(call, delivery, action);
    }

    private async ValueTask AwaitCallAsync(ValueTask call, Delivery<THandle> delivery, SettleAction action)
    {
        try
        {
            await call.AsTask().WaitAsync(options.SettleTimeout, time).ConfigureAwait(false);
            Accepted(delivery, action);
        }
        catch (TimeoutException)
        {
            stats.Increment(StatCounter.SettleErrors);
            stats.Latency.Record(time.GetElapsedTime(delivery.PulledAt));
            Log.SettleTimedOut(logger, action, delivery.Command?.CommandId, options.SettleTimeout);
        }
        catch (Exception ex)
        {
            Failed(delivery, action, ex);
        }
    }

    private void Accepted(Delivery<THandle> delivery, SettleAction action)
    {
        stats.Increment(action switch
        {
            SettleAction.Ack => StatCounter.Acked,
            SettleAction.Terminate => StatCounter.Terminated,
            _ => StatCounter.Nacked,
        });
        stats.Latency.Record(time.GetElapsedTime(delivery.PulledAt));
    }

    private void Failed(Delivery<THandle> delivery, SettleAction action, Exception ex)
    {
        stats.Increment(StatCounter.SettleErrors);
        stats.Latency.Record(time.GetElapsedTime(delivery.PulledAt));
        Log.SettleFailed(logger, ex, action, delivery.Command?.CommandId);
    }
}
