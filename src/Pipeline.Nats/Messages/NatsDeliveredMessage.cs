using NATS.Client.Core;

namespace Pipeline.Nats.Messages;

/// <summary>What a decoder sees of one JetStream delivery.</summary>
/// <param name="Subject">The subject the message was published on.</param>
/// <param name="Data">The body (empty when none).</param>
/// <param name="Headers">The headers, when any.</param>
/// <param name="StreamSequence">The message's sequence in its stream: stable across redeliveries and server restarts.</param>
/// <param name="NumDelivered">Which delivery this is (1 for the first). Not reliable after a server crash.</param>
public readonly record struct NatsDeliveredMessage(
    string Subject,
    ReadOnlyMemory<byte> Data,
    NatsHeaders? Headers,
    ulong StreamSequence,
    ulong NumDelivered);
