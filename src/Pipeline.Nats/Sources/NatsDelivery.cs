using NATS.Client.Core;

namespace Pipeline.Nats.Sources;

/// <summary>
/// What <see cref="NatsCommandSource"/> tells a claimer of one JetStream delivery
/// (<see cref="Claiming.ClaimContext.Delivery"/>): which stream message it is, and which delivery
/// of it. The KV claimer reads <see cref="StreamSequence"/>: the same sequence again is its own
/// redelivery, another one a second publish of the command.
/// </summary>
/// <param name="Subject">The subject the message was published on.</param>
/// <param name="StreamSequence">The message's sequence in its stream: stable across redeliveries and server restarts.</param>
/// <param name="ConsumerSequence">The consumer's sequence for this delivery (a new one each redelivery); 0 when the server did not say.</param>
/// <param name="NumDelivered">Which delivery of the message this is (1 for the first). Not reliable after a server crash.</param>
/// <param name="Headers">The message's headers as received, when any (the message's own: read, do not change).</param>
public sealed record NatsDelivery(
    string Subject,
    ulong StreamSequence,
    ulong ConsumerSequence,
    ulong NumDelivered,
    NatsHeaders? Headers = null);
