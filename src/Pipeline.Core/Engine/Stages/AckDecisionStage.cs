using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Events;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Ack-decision: the one place a claim's fate is decided. <c>Claimed</c> goes on to Dispatch, which
/// acks it as its tool starts when the claim is ownership (ack before dispatch; never while it waits
/// for a slot, so a stop cannot ack and drop it) or on the tool's outcome (ack after); the other
/// outcomes and duplicate deliveries are settled here and go straight to Emit.
/// </summary>
internal sealed class AckDecisionStage<THandle>
{
    public const string Name = "Ack-decision";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly DispatchStage<THandle> _dispatch;
    private readonly StageBlock<Delivery<THandle>> _block;

    public AckDecisionStage(PipelineRuntime<THandle> runtime, DispatchStage<THandle> dispatch)
    {
        _runtime = runtime;
        _dispatch = dispatch;
        _block = new StageBlock<Delivery<THandle>>(DecideAsync, runtime.Options.AckDecision.Parallelism);
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    public void Post(Delivery<THandle> delivery)
    {
        delivery.Position = DeliveryPosition.DecideQueued;
        _runtime.Forward(_block, delivery, delivery, Name);
    }

    public void Complete() => _block.Complete();

    private async ValueTask DecideAsync(Delivery<THandle> delivery)
    {
        delivery.Position = DeliveryPosition.Deciding;
        try
        {
            if (await DecideAndSettleAsync(delivery).ConfigureAwait(false))
            {
                // A stop has begun: a command that would only queue for a slot goes back now,
                // unless its claim cannot be released.
                if (!_runtime.Stopping.IsCancellationRequested || !_runtime.CanHandBack(delivery)
                    || !await _runtime.TryHandBackAsync(delivery).ConfigureAwait(false))
                {
                    _dispatch.Post(delivery);
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            await _runtime.InternalErrorAsync(delivery, ex, Name).ConfigureAwait(false);
        }

        _runtime.Finish(delivery);
    }

    /// <summary>Settles what is decided here; true when the delivery goes on to Dispatch.</summary>
    private async ValueTask<bool> DecideAndSettleAsync(Delivery<THandle> delivery)
    {
        var runtime = _runtime;
        var stats = runtime.Stats;
        var outcome = delivery.Outcome;
        if (delivery.Duplicate != RecentIdState.Recorded)
        {
            // A duplicate of a command that ran here, or (ack before dispatch: the claim is
            // ownership) whose tool started here. Claim holds the duplicates of a running one until then.
            await runtime.Settler.SettleAsync(delivery, Settlement.Ack).ConfigureAwait(false);
            stats.Increment(StatCounter.Skipped);
            runtime.AddEvent(delivery, EventTypes.CommandSkipped, EventStatus.Skipped, error: "duplicate delivery of a command this worker is running or has run");
            return false;
        }

        switch (outcome.Kind)
        {
            case ClaimOutcomeKind.Claimed:
                // Dispatch emits command.claimed (stamped now) ahead of command.started.
                delivery.ClaimedAt = runtime.Time.GetUtcNow();
                return true;

            case ClaimOutcomeKind.AlreadyClaimed:
                // Claimed elsewhere is not run here (no id was recorded for it: a later delivery must run).
                await runtime.Settler.SettleAsync(delivery, Settlement.Ack).ConfigureAwait(false);
                stats.Increment(StatCounter.Skipped);
                runtime.AddEvent(delivery, EventTypes.CommandSkipped, EventStatus.Skipped, error: "already claimed by another worker");
                return false;

            case ClaimOutcomeKind.RetryLater:
                await runtime.Settler.SettleAsync(delivery, Settlement.Nack(runtime.DelayFor(outcome.Command), outcome.Reason)).ConfigureAwait(false);
                stats.Increment(StatCounter.ClaimRetries);
                runtime.AddEvent(delivery, EventTypes.ClaimRetry, EventStatus.Retry, error: outcome.Reason);
                return false;

            default:
                var settlement = runtime.Options.FailedClaimAction == FailedClaimAction.Terminate && runtime.Source.Terminate is not null
                    ? Settlement.Terminate(outcome.Reason ?? "claim failed")
                    : Settlement.Nack(runtime.DelayFor(outcome.Command), outcome.Reason);
                await runtime.Settler.SettleAsync(delivery, settlement).ConfigureAwait(false);
                stats.Increment(StatCounter.ClaimFailures);
                runtime.AddEvent(delivery, EventTypes.ClaimFailed, EventStatus.Failed, error: outcome.Reason);
                return false;
        }
    }
}
