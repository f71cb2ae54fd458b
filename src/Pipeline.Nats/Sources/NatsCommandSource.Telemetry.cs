using System.Diagnostics;
using System.Globalization;
using Pipeline.Nats.Messages;
using Pipeline.Telemetry;

namespace Pipeline.Nats.Sources;

/// <summary>How the source describes itself to the pipeline's telemetry, and the trace context of each message.</summary>
public sealed partial class NatsCommandSource
{
    /// <inheritdoc/>
    public string MessagingSystem => "nats";

    /// <summary>The stream: one name per worker pool (a message's subject may be one per execution, too many to name spans by).</summary>
    public string? DestinationName => _options.Stream;

    /// <summary>The durable consumer the workers share.</summary>
    public string? ConsumerGroupName => _options.Consumer;

    /// <summary>The stream sequence: stable across redeliveries and server restarts.</summary>
    public string? MessageIdOf(NatsHandle handle) => handle.StreamSequence.ToString(CultureInfo.InvariantCulture);

    /// <summary>Read only while someone listens to the pipeline's spans, and only from a message with headers: otherwise free.</summary>
    private ActivityContext TraceParentOf(in NatsDeliveredMessage message) =>
        message.Headers is not null && PipelineTelemetry.ActivitySource.HasListeners() ? _decoder.TraceParent(message) : default;
}
