using System.Diagnostics;
using Pipeline.Commands;

namespace Pipeline.Nats.Messages;

/// <summary>
/// Turns one delivered message into what the pipeline claims: the message shape lives here, not in
/// the source, so another shape (a notification claimed over HTTP) is another decoder beside
/// <see cref="CommandDecoder"/>. A decoder never throws: a body it cannot read is a
/// <see cref="ClaimOutcomeKind.Failed"/> outcome naming the stream sequence (the pipeline then
/// terminates it).
/// </summary>
public interface INatsMessageDecoder
{
    /// <summary>Decodes <paramref name="message"/>.</summary>
    ClaimOutcome Decode(in NatsDeliveredMessage message);

    /// <summary>
    /// The trace context <paramref name="message"/> carries, the parent of its command's spans;
    /// <c>default</c> for none. Asked only while the pipeline's spans have listeners. Never throws.
    /// By default the W3C <c>traceparent</c>/<c>tracestate</c> headers; a shape that carries it in
    /// its body (a notification's <c>trace</c> field) reads it from there.
    /// </summary>
    ActivityContext TraceParent(in NatsDeliveredMessage message) => NatsTraceContext.FromHeaders(message.Headers);
}
