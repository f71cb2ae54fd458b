using System.Diagnostics;
using NATS.Client.Core;

namespace Pipeline.Nats.Messages;

/// <summary>Reads the W3C trace context (<c>traceparent</c>, <c>tracestate</c>) a producer wrote into a message's headers.</summary>
public static class NatsTraceContext
{
    // Static and capture-free: extracting allocates no delegate.
    private static readonly DistributedContextPropagator.PropagatorGetterCallback Getter = static (carrier, name, out value, out values) =>
    {
        values = null;
        value = carrier is NatsHeaders headers && headers.TryGetValue(name, out var found) && found.Count > 0 ? found[0] : null;
    };

    /// <summary>
    /// The remote parent the headers carry, or <c>default</c> when they carry none or a malformed
    /// one: a bad <c>traceparent</c> only means the command's spans start a new trace.
    /// </summary>
    public static ActivityContext FromHeaders(NatsHeaders? headers)
    {
        if (headers is null || headers.Count == 0)
        {
            return default;
        }

        try
        {
            DistributedContextPropagator.Current.ExtractTraceIdAndState(headers, Getter, out var traceParent, out var traceState);
            return ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var context) ? context : default;
        }
        catch (ArgumentException)
        {
            // A propagator set by the host that rejects what it reads: no parent, never a failure.
            return default;
        }
    }
}
