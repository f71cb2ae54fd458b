using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>
/// Pull-model command source (the seed's <c>CommandSource</c> v0.3).
/// </summary>
/// <remarks>
/// <para><see cref="NextAsync"/> returns one pulled item, or <c>null</c> when the source is exhausted;
/// a throw means no item was pulled. Concurrent <see cref="NextAsync"/> calls are safe and each
/// returns its own handle.</para>
/// <para>Every handle must be passed to exactly one of <see cref="AckAsync"/>, <see cref="NackAsync"/>
/// or a capability's settle call (<see cref="ISupportsDelayedNack{THandle}"/>,
/// <see cref="ISupportsTerminate{THandle}"/>). A second settle of the same handle is undefined.</para>
/// </remarks>
/// <typeparam name="THandle">The source's own ack handle.</typeparam>
public interface ICommandSource<THandle>
{
    /// <summary>Pulls one item; <c>null</c> when the source is exhausted.</summary>
    ValueTask<Pulled<THandle>?> NextAsync(CancellationToken cancellationToken);

    /// <summary>Commits the pull: the item is not redelivered.</summary>
    ValueTask AckAsync(THandle handle, CancellationToken cancellationToken);

    /// <summary>Negative-acknowledges the pull: the item is redelivered per the source's own policy.</summary>
    ValueTask NackAsync(THandle handle, CancellationToken cancellationToken);
}

/// <summary>A source that can redeliver after a delay (backoff without holding a worker slot).</summary>
public interface ISupportsDelayedNack<THandle>
{
    /// <summary>Nacks <paramref name="handle"/> so it is redelivered no sooner than <paramref name="delay"/>.</summary>
    ValueTask NackAsync(THandle handle, TimeSpan delay, CancellationToken cancellationToken);
}

/// <summary>A source that can give up on a poison item so it is never redelivered.</summary>
public interface ISupportsTerminate<THandle>
{
    /// <summary>Settles <paramref name="handle"/> for good; the source records <paramref name="reason"/> (dead letter, advisory).</summary>
    ValueTask TerminateAsync(THandle handle, string reason, CancellationToken cancellationToken);
}

/// <summary>A source whose deliveries expire unless renewed while a long dispatch runs.</summary>
public interface ISupportsKeepAlive<THandle>
{
    /// <summary>How often the pipeline renews a held handle. Must be well below the source's redelivery deadline.</summary>
    TimeSpan KeepAliveInterval { get; }

    /// <summary>Extends the delivery (NATS in-progress, lease renewal). Does not settle the handle.</summary>
    ValueTask KeepAliveAsync(THandle handle, CancellationToken cancellationToken);
}

/// <summary>
/// A source that describes each delivery to a claimer (<see cref="Claiming.ClaimContext.Delivery"/>):
/// where it came from, which delivery of the message it is, the transport's metadata. The engine
/// passes the description through untouched, so it stays source-agnostic; a claimer matches the
/// type it knows (e.g. <c>NatsDelivery</c>).
/// </summary>
public interface ISupportsDeliveryInfo<THandle>
{
    /// <summary>
    /// The description of the delivery behind <paramref name="handle"/>, or null. Asked only when a
    /// claimer other than <see cref="Claiming.PassThroughClaimer"/> claims it (once per claim), so it
    /// may allocate; a throw is treated as the claimer's (retry later).
    /// </summary>
    object? DeliveryOf(THandle handle);
}

/// <summary>
/// A source that fetches ahead of <c>NextAsync</c> (a buffer, an open pull request). When a stop
/// begins the pipeline calls it before it hands back the commands that have not started, so what
/// it hands back is not delivered to this worker again but to the rest of the pool.
/// </summary>
public interface ISupportsStopPulling
{
    /// <summary>
    /// Stops fetching, gives back what was fetched and not handed out, and completes when nothing
    /// more will arrive for this worker; <c>NextAsync</c> returns null from now on. Idempotent.
    /// </summary>
    Task StopPullingAsync();
}

/// <summary>
/// A source whose settle may take longer than the engine's <see cref="Engine.PipelineOptions.SettleTimeout"/>
/// by design: it rides out an outage of its backend (a store restarting) by retrying, and ends
/// every settle (done or failed) within <see cref="SettleTimeout"/>. While the run goes on the
/// engine waits that long, plus its own settle timeout as grace, before it counts a settle as
/// failed; after the shutdown deadline the engine's own budget still bounds the last settles.
/// </summary>
public interface ISupportsSettleTimeout
{
    /// <summary>The longest one settle of this source takes before it returns or throws.</summary>
    TimeSpan SettleTimeout { get; }
}

/// <summary>
/// A source that describes itself for telemetry: spans and metrics then carry the OpenTelemetry
/// messaging attributes (<c>messaging.system</c>, <c>messaging.destination.name</c>,
/// <c>messaging.consumer.group.name</c>, <c>messaging.message.id</c>) without the engine knowing
/// the source.
/// </summary>
public interface ISupportsTelemetry<THandle>
{
    /// <summary>The messaging system (<c>messaging.system</c>), e.g. <c>nats</c>.</summary>
    string MessagingSystem { get; }

    /// <summary>Where messages are consumed from (<c>messaging.destination.name</c>); low cardinality: it names the spans.</summary>
    string? DestinationName { get; }

    /// <summary>The consumer group the worker consumes as (<c>messaging.consumer.group.name</c>), when any.</summary>
    string? ConsumerGroupName { get; }

    /// <summary>The message's id (<c>messaging.message.id</c>); asked only while a span records, so it may allocate.</summary>
    string? MessageIdOf(THandle handle);
}
