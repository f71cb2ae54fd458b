namespace Pipeline.Nats.Sources;

/// <summary>What a durable consumer holds, by the server's count (its consumer info).</summary>
/// <param name="AwaitingAck">Delivered and not yet acked: held by a worker, a dead worker's until their ack wait ends, or naked and waiting for redelivery.</param>
/// <param name="Pending">In the stream and not yet delivered.</param>
/// <param name="Redelivered">Of those awaiting an ack, how many were delivered more than once.</param>
public sealed record NatsConsumerState(long AwaitingAck, ulong Pending, long Redelivered)
{
    /// <summary>Whether anything is left on the consumer.</summary>
    public bool HoldsWork => AwaitingAck > 0 || Pending > 0;
}
