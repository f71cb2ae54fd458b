using System.Threading.Tasks.Dataflow;

namespace Pipeline.Events;

/// <summary>
/// Posts every event to a Dataflow block of the caller's, so the event stream can be linked into
/// their own Dataflow network. A bounded target is waited on (that wait is the pipeline's
/// back-pressure on events); a target that declines for good (completed or faulted) makes the
/// write fail with <see cref="EventSinkClosedException"/>, which the Emit block drops and counts.
/// </summary>
public sealed class TargetBlockEventSink : IEventSink
{
    private readonly ITargetBlock<PipelineEvent> _target;

    /// <summary>Creates a sink posting to <paramref name="target"/>.</summary>
    public TargetBlockEventSink(ITargetBlock<PipelineEvent> target)
    {
        _target = target ?? throw new ArgumentNullException(nameof(target));
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        var events = batch.Span;
        for (var i = 0; i < events.Length; i++)
        {
            // Post takes the fast path while the target has room; the first refusal goes asynchronous.
            if (!_target.Post(events[i]))
            {
                return SendRestAsync(batch[i..], cancellationToken);
            }
        }

        return ValueTask.CompletedTask;
    }

    private async ValueTask SendRestAsync(ReadOnlyMemory<PipelineEvent> rest, CancellationToken cancellationToken)
    {
        // The batch's memory is only lent for this call, so the events are sent before returning.
        for (var i = 0; i < rest.Length; i++)
        {
            if (!await _target.SendAsync(rest.Span[i], cancellationToken).ConfigureAwait(false))
            {
                throw new EventSinkClosedException($"The target block declined an event ({rest.Length - i} of the batch not sent): it is completed or faulted.");
            }
        }
    }
}
