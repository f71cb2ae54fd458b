namespace Pipeline.Sources;

/// <summary>
/// The optional capabilities of one source, discovered once when the pipeline is built so the
/// stages never cast the source themselves.
/// </summary>
/// <typeparam name="THandle">The source's handle type.</typeparam>
public sealed class SourceCapabilities<THandle>
{
    private SourceCapabilities(ICommandSource<THandle> source)
    {
        Source = source;
        DelayedNack = source as ISupportsDelayedNack<THandle>;
        Terminate = source as ISupportsTerminate<THandle>;
        KeepAlive = source as ISupportsKeepAlive<THandle>;
        Telemetry = source as ISupportsTelemetry<THandle>;
        StopPulling = source as ISupportsStopPulling;
        DeliveryInfo = source as ISupportsDeliveryInfo<THandle>;
        SettleTimeout = source as ISupportsSettleTimeout;
    }

    /// <summary>The source itself.</summary>
    public ICommandSource<THandle> Source { get; }

    /// <summary>Delayed nack, or null when the source redelivers only at once.</summary>
    public ISupportsDelayedNack<THandle>? DelayedNack { get; }

    /// <summary>Terminate, or null when the source cannot give up on an item.</summary>
    public ISupportsTerminate<THandle>? Terminate { get; }

    /// <summary>Keep-alive, or null when deliveries do not expire.</summary>
    public ISupportsKeepAlive<THandle>? KeepAlive { get; }

    /// <summary>How the source describes itself to telemetry, or null when it does not.</summary>
    public ISupportsTelemetry<THandle>? Telemetry { get; }

    /// <summary>Stops a source that fetches ahead, or null when it holds nothing it was not asked for.</summary>
    public ISupportsStopPulling? StopPulling { get; }

    /// <summary>Describes each delivery to a claimer, or null when the claimer gets the pulled outcome alone.</summary>
    public ISupportsDeliveryInfo<THandle>? DeliveryInfo { get; }

    /// <summary>How long the source's settles may take, or null when the engine's settle timeout bounds them.</summary>
    public ISupportsSettleTimeout? SettleTimeout { get; }

    /// <summary>Discovers what <paramref name="source"/> offers.</summary>
    public static SourceCapabilities<THandle> Discover(ICommandSource<THandle> source) =>
        new(source ?? throw new ArgumentNullException(nameof(source)));
}
