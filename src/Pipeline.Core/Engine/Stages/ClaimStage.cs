using Pipeline.Claiming;
using Pipeline.Commands;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Claim: records the command id (a duplicate of one running or finished here is marked and not
/// claimed again), then asks the claimer. An outcome with no command where one is required
/// (<c>default(ClaimOutcome)</c>) becomes a <see cref="ClaimOutcomeKind.Failed"/> claim; a
/// claimer that throws is a <see cref="ClaimOutcomeKind.RetryLater"/>.
/// </summary>
internal sealed class ClaimStage<THandle>
{
    public const string Name = "Claim";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly IClaimer _claimer;
    private readonly AckDecisionStage<THandle> _next;
    private readonly StageBlock<Delivery<THandle>> _block;

    public ClaimStage(PipelineRuntime<THandle> runtime, IClaimer claimer, AckDecisionStage<THandle> next)
    {
        _runtime = runtime;
        _claimer = claimer;
        _next = next;
        _block = new StageBlock<Delivery<THandle>>(ClaimAsync, runtime.Options.Claim.Parallelism);
        runtime.Reclaim = Post;
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    public void Post(Delivery<THandle> delivery)
    {
        delivery.Position = DeliveryPosition.ClaimQueued;
        _runtime.Forward(_block, delivery, delivery, Name);
    }

    public void Complete() => _block.Complete();

    private async ValueTask ClaimAsync(Delivery<THandle> delivery)
    {
        delivery.Position = DeliveryPosition.Claiming;
        if (!delivery.IsOpen)
        {
            // Settled while it waited for its original (the hard deadline): its path ends here.
            _runtime.Finish(delivery);
            return;
        }

        try
        {
            var outcome = Validate(delivery.Outcome, "the source");
            if (outcome.Kind == ClaimOutcomeKind.Claimed)
            {
                var commandId = outcome.Command!.CommandId;
                if (_runtime.Recent is { } recent)
                {
                    var state = recent.TryBegin(commandId, delivery.Slot, out var ticket, out var holder);
                    if (state == RecentIdState.Running && _runtime.Options.AckMode == AckMode.AckAfterDispatch)
                    {
                        // The original holds its handle and may yet fail and need this delivery: this
                        // one waits, kept alive, until the original's path is done, then is claimed again.
                        if (_runtime.DeliveryAt(holder).TryHold(delivery, ticket))
                        {
                            delivery.Position = DeliveryPosition.ClaimQueued;
                            return;
                        }

                        // The original finished in between: claim again, at once.
                        Post(delivery);
                        return;
                    }

                    if (state != RecentIdState.Recorded)
                    {
                        delivery.Outcome = outcome;
                        delivery.Duplicate = state;
                        _next.Post(delivery);
                        return;
                    }

                    delivery.RecordedId = commandId;
                    delivery.RecordedTicket = ticket;
                }

                outcome = await ClaimWithClaimerAsync(outcome).ConfigureAwait(false);
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

    private async ValueTask<ClaimOutcome> ClaimWithClaimerAsync(ClaimOutcome pulled)
    {
        try
        {
            return Validate(await _claimer.ClaimAsync(pulled, _runtime.Abort).ConfigureAwait(false), "the claimer");
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
