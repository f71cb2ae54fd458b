using System.Diagnostics;

namespace Pipeline.Commands;

/// <summary>One pulled item: a claim outcome plus the handle that must be acked or nacked exactly once.</summary>
/// <typeparam name="THandle">The source's own handle type.</typeparam>
/// <param name="Outcome">What claiming the item produced (sources that do not claim return <see cref="ClaimOutcome.Claimed"/>).</param>
/// <param name="Handle">The opaque handle passed back to ack or nack.</param>
public readonly record struct Pulled<THandle>(ClaimOutcome Outcome, THandle Handle)
{
    /// <summary>
    /// The trace context the item carried (a W3C <c>traceparent</c> from the producer), the parent
    /// of the command's spans; <c>default</c> when it carried none, and the command's spans start a
    /// new trace. Sources need read it only while <see cref="Telemetry.PipelineTelemetry.ActivitySource"/> has listeners.
    /// </summary>
    public ActivityContext Parent { get; init; }
}
