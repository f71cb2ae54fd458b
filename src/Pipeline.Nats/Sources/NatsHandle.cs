using NATS.Client.JetStream;

namespace Pipeline.Nats.Sources;

/// <summary>The handle of one JetStream delivery: the message to settle, and where it sits in its stream.</summary>
public readonly struct NatsHandle
{
    internal NatsHandle(INatsJSMsg<byte[]> message, ulong streamSequence, ulong numDelivered)
    {
        Message = message;
        StreamSequence = streamSequence;
        NumDelivered = numDelivered;
    }

    /// <summary>The message's sequence in its stream (stable across redeliveries).</summary>
    public ulong StreamSequence { get; }

    /// <summary>Which delivery of the message this is (1 for the first).</summary>
    public ulong NumDelivered { get; }

    internal INatsJSMsg<byte[]> Message { get; }
}
