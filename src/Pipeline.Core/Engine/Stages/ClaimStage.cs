using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Sources;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Claim: asks the claimer, then records the command id (a duplicate of one running or finished
/// here is marked and not run again). An outcome with no command where one is required
/// (<c>default(ClaimOutcome)</c>) becomes a <see cref="ClaimOutcomeKind.Failed"/> claim; a
/// claimer that throws is a <see cref="ClaimOutcomeKind.RetryLater"/>.
/// </summary>
/// <remarks>
/// The id is recorded only once the claim is granted: a redelivery that arrives while the first
/// delivery's claim is still being answered (and may yet say retry later) is not a duplicate of
/// anything running. A claim that takes time is preceded by a look at the cache, so a duplicate of
/// a running or finished command costs no call to the claimer.
/// The block counts what is inside it (queued, being claimed, or held behind its original), so a
/// run that ends drains every held duplicate through it before it completes. Without a recent-id
/// cache nothing is held, and nothing is counted.
/// </remarks>
internal sealed class ClaimStage<THandle>
{
    public const string Name = "Claim";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly IClaimer _claimer;
    private readonly bool _claimTakesTime;
    private readonly ISupportsDeliveryInfo<THandle>? _deliveryInfo;
    private readonly bool _counts;
    private readonly AckDecisionStage<THandle> _next;
    private readonly StageBlock<Delivery<THandle>> _block;
    private readonly TaskCompletionSource _empty = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inside;
    private int _closing;

    public ClaimStage(PipelineRuntime<THandle> runtime, IClaimer claimer, AckDecisionStage<THandle> next)
    {
        _runtime = runtime;
        _claimer = claimer;
        _claimTakesTime = claimer is not PassThroughClaimer;
        _deliveryInfo = runtime.Source.DeliveryInfo;
        _counts = runtime.Recent is not null;
        _next = next;
        _block = new StageBlock<Delivery<THandle>>(ClaimAsync, runtime.Options.Claim.Parallelism);
        runtime.Reclaim = Reclaim;
        runtime.TakeFromClaimQueue = TakeForHandBack;
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    public void Post(Delivery<THandle> delivery)
    {
        Enter();
        delivery.Position = DeliveryPosition.ClaimQueued;
        if (!_block.Post(delivery))
        {
            Leave();
            _ = _runtime.StrandAsync(delivery, Name).AsTask();
        }
    }

    /// <summary>
    /// Completes the block once nothing is inside it: the pulls have ended, and every duplicate held
    /// behind a running original has been claimed again (only a held one can come back in).
    /// </summary>
    public async Task CompleteWhenEmptyAsync()
    {
        Interlocked.Exchange(ref _closing, 1);
        if (Volatile.Read(ref _inside) != 0)
        {
            // A faulted block drops what it held, and the count never reaches zero: its end counts too.
            await Task.WhenAny(_empty.Task, _block.Completion).ConfigureAwait(false);
        }

        _block.Complete();
    }

    /// <summary>A held duplicate's original is done: claim it again (counted inside throughout).</summary>
    private void Reclaim(Delivery<THandle> delivery)
    {
        Post(delivery);
        Leave();
    }

    private bool TakeForHandBack(Delivery<THandle> delivery)
    {
        if (!delivery.TryTake(DeliveryPosition.ClaimQueued, DeliveryPosition.HandedBack))
        {
            return false;
        }

        Leave();
        return true;
    }

    private void Enter()
    {
        if (_counts)
        {
            Interlocked.Increment(ref _inside);
        }
    }

    private void Leave()
    {
        if (_counts && Interlocked.Decrement(ref _inside) == 0 && Volatile.Read(ref _closing) == 1)
        {
            _empty.TrySetResult();
        }
    }

    private async ValueTask ClaimAsync(Delivery<THandle> delivery)
    {
        if (!delivery.TryTake(DeliveryPosition.ClaimQueued, DeliveryPosition.Claiming))
        {
            return; // handed back by the stop while it waited here
        }

        try
        {
            await ClaimOrHoldAsync(delivery).ConfigureAwait(false);
        }
        finally
        {
            Leave();
        }
    }

    private async ValueTask ClaimOrHoldAsync(Delivery<THandle> delivery)
    {
        if (!delivery.IsOpen)
        {
            // Settled while it was held behind its original (the hard deadline): its path ends here.
            _runtime.Finish(delivery);
            return;
        }

        try
        {
            var outcome = Validate(delivery.Outcome, "the source");
            if (outcome.Kind == ClaimOutcomeKind.Claimed)
            {
                var stopping = _runtime.Stopping.IsCancellationRequested;
                var recent = _runtime.Recent;
                var commandId = outcome.Command!.CommandId;

                // A duplicate of a command that runs or ran here is skipped (or held), even at a stop:
                // handed back, another worker would run it again.
                if (recent is not null && (_claimTakesTime || stopping)
                    && recent.Peek(commandId, out var heldTicket, out var heldBy) is var seen and not RecentIdState.Recorded)
                {
                    PassDuplicate(delivery, outcome, seen, heldTicket, heldBy);
                    return;
                }

                if (stopping)
                {
                    // Nothing is claimed yet: it goes back at once for another worker.
                    await _runtime.TryHandBackAsync(delivery).ConfigureAwait(false);
                    _runtime.Finish(delivery);
                    return;
                }

                if (_claimTakesTime)
                {
                    // Only a real claimer is asked (and its context built): the pass-through's
                    // answer is the validated outcome itself.
                    outcome = await ClaimWithClaimerAsync(delivery, outcome).ConfigureAwait(false);
                }

                if (outcome.Kind == ClaimOutcomeKind.Claimed)
                {
                    delivery.ClaimedElsewhere = _claimTakesTime;
                    if (recent is not null)
                    {
                        var state = recent.TryBegin(commandId, delivery.Slot, out var ticket, out var holder);
                        if (state != RecentIdState.Recorded)
                        {
                            PassDuplicate(delivery, outcome, state, ticket, holder);
                            return;
                        }

                        delivery.RecordedId = commandId;
                        delivery.RecordedTicket = ticket;
                    }
                }
            }

            delivery.Outcome = outcome;
        }
        catch (Exception ex)
        {
            await _runtime.InternalErrorAsync(delivery, ex, Name).ConfigureAwait(false);
            _runtime.Finish(delivery);
            return;
        }

        _next.Post(delivery);
    }

    /// <summary>
    /// The id is held by another delivery (<paramref name="state"/>): this one goes on as a
    /// duplicate (skipped), or waits behind its running original to be claimed again.
    /// </summary>
    /// <remarks>
    /// A duplicate of a running command waits while the original may still give its command back:
    /// with ack after dispatch until the original's path is done (it may fail and be nacked); with
    /// ack before dispatch until its tool starts (a stop hands back what has not started, and an
    /// ack of the duplicate would have acked the message the original hands back: lost). Once
    /// the original was acked the duplicate is acked and skipped at once.
    /// </remarks>
    private void PassDuplicate(Delivery<THandle> delivery, in ClaimOutcome outcome, RecentIdState state, long ticket, int holder)
    {
        if (state == RecentIdState.Running)
        {
            // Counted inside and marked held before the original can see it, so a release that
            // comes at once finds it in place.
            Enter();
            delivery.Position = DeliveryPosition.Held;
            var unlessAcked = _runtime.Options.AckMode == AckMode.AckBeforeDispatch;
            switch (_runtime.DeliveryAt(holder).TryHold(delivery, ticket, unlessAcked))
            {
                case HoldResult.Held:
                    return;
                case HoldResult.Gone:
                    Reclaim(delivery); // the original finished in between: claim again, at once
                    return;
                default:
                    Leave(); // the original started: skipped below
                    delivery.Position = DeliveryPosition.Claiming;
                    break;
            }
        }

        delivery.Outcome = outcome;
        delivery.Duplicate = state;
        _next.Post(delivery);
    }

    /// <summary>Asks the claimer, with what the source says of this delivery when it says anything.</summary>
    private async ValueTask<ClaimOutcome> ClaimWithClaimerAsync(Delivery<THandle> delivery, ClaimOutcome pulled)
    {
        try
        {
            var context = new ClaimContext(pulled, _deliveryInfo?.DeliveryOf(delivery.Handle));
            return Validate(await _claimer.ClaimAsync(context, _runtime.Abort).ConfigureAwait(false), "the claimer");
        }
        catch (Exception ex)
        {
            return ClaimOutcome.RetryLater($"claim threw {ex.GetType().Name}: {ex.Message}", pulled.Command);
        }
    }

    private static ClaimOutcome Validate(ClaimOutcome outcome, string from) =>
        outcome.Kind switch
        {
            ClaimOutcomeKind.Claimed when outcome.Command is null => ClaimOutcome.Failed($"{from} returned a Claimed outcome with no command (default(ClaimOutcome))."),
            ClaimOutcomeKind.Claimed or ClaimOutcomeKind.AlreadyClaimed or ClaimOutcomeKind.RetryLater or ClaimOutcomeKind.Failed => outcome,
            _ => ClaimOutcome.Failed($"{from} returned an unknown claim outcome ({(int)outcome.Kind})", outcome.Command),
        };
}
