using Pipeline.Nats.Claiming;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Events;
using Pipeline.Nats.Sources;

namespace Pipeline.Nats.Modules;

/// <summary>
/// A worker on NATS, bound from the <c>Pipeline:Nats</c> section: the connection and the
/// JetStream pieces, each with its own defaults (<see cref="NatsModule.Bind"/>).
/// </summary>
public sealed record NatsWorkerOptions
{
    /// <summary>
    /// The server, credentials and TLS. Required with source <c>nats</c>, the <c>nats-kv</c>
    /// claimer or events <c>nats</c> (null: none configured); binding any <c>Nats:Connection:*</c> key creates it.
    /// </summary>
    public NatsConnectionOptions? Connection { get; init; }

    /// <summary>The stream, durable consumer and pulling (<see cref="NatsSourceOptions"/> documents each default).</summary>
    public NatsSourceOptions Source { get; init; } = new();

    /// <summary>
    /// The older spelling of <c>Pipeline:Claimer nats-kv</c>, kept as its alias: with source
    /// <c>nats</c> and no <c>Pipeline:Claimer</c>, true claims each command in a KV bucket. Default false.
    /// </summary>
    public bool KvClaimer { get; init; }

    /// <summary>The claim bucket of the <c>nats-kv</c> claimer.</summary>
    public NatsKvClaimerOptions Claimer { get; init; } = new();

    /// <summary>The events stream and subject template, with events <c>nats</c>.</summary>
    public NatsEventSinkOptions Events { get; init; } = new();
}
