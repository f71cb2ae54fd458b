using Pipeline.Commands;
using Pipeline.Sources;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// One backend under the conformance suite: the store or broker holding the seeded commands, the
/// source over it, and a view of what the backend holds by its own record (a broker's consumer
/// state, a store's rows), so the suite's assertions do not rest on the source's word.
/// </summary>
/// <typeparam name="THandle">The source's handle type.</typeparam>
public abstract class CommandSourceBackend<THandle> : IAsyncDisposable
{
    /// <summary>The source under test, over the seeded commands.</summary>
    public abstract ICommandSource<THandle> Source { get; }

    /// <summary>
    /// True for a source that ends at the end of its input (a file, a completed queue): it returns
    /// null only once every delivery is settled. False for one that ends when idle (a broker with
    /// an idle timeout).
    /// </summary>
    public abstract bool EndsAtEndOfInput { get; }

    /// <summary>
    /// How long a delivery may go unsettled before the backend delivers it again (an ack wait, a
    /// lease); null when it never does by itself. "Not redelivered" is watched for three times this.
    /// </summary>
    public abstract TimeSpan? RedeliveryDeadline { get; }

    /// <summary>Whether one puller gets the commands in the order they were seeded. Default true.</summary>
    public virtual bool DeliversInSeedOrder => true;

    /// <summary>
    /// A number the source reports with each delivery that grows by one with every redelivery (the
    /// command's <c>attempts</c>, a delivery count); null when it reports none.
    /// </summary>
    public abstract long? AttemptOf(Pulled<THandle> pulled);

    /// <summary>What the backend holds now, by its own record.</summary>
    public abstract ValueTask<BackendRecord> ReadAsync(CancellationToken cancellationToken);

    /// <summary>
    /// A second source over the same backend (another worker of a pool), for the stop-pulling
    /// case; the backend disposes it. Sources that cannot share their backend throw.
    /// </summary>
    public virtual ValueTask<ICommandSource<THandle>> OpenAnotherSourceAsync(CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} cannot open a second source over its backend.");

    /// <inheritdoc/>
    public abstract ValueTask DisposeAsync();
}

/// <summary>How the suite wants a backend set up; a backend applies what it has and ignores the rest.</summary>
public sealed record ConformanceSettings
{
    /// <summary>
    /// The backend's redelivery deadline (an ack wait, a lease), where it has one. Default 30 s:
    /// far beyond any stall, so only the cases about redelivery (which shorten it) see one.
    /// </summary>
    public TimeSpan RedeliveryDeadline { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// For a source that ends when idle: how long nothing must arrive before <c>NextAsync</c>
    /// returns null (while the backend still holds work for it, it waits on). Default 2 s.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>What a backend holds, by its own record; what it keeps no record of is null.</summary>
/// <param name="Pending">Commands waiting for a delivery (never delivered, or given back and due again).</param>
/// <param name="AwaitingSettle">Commands delivered and not yet settled, including nacked ones not yet delivered again.</param>
/// <param name="DeadLetters">Commands the backend gave up on (terminated), in the order it recorded them.</param>
public sealed record BackendRecord(long? Pending, long? AwaitingSettle, IReadOnlyList<DeadLetterRecord>? DeadLetters)
{
    /// <summary>Everything the backend still holds, where it counts any of it: pending plus awaiting a settle.</summary>
    public long? Held => Pending is null && AwaitingSettle is null ? null : (Pending ?? 0) + (AwaitingSettle ?? 0);

    /// <inheritdoc/>
    public override string ToString() =>
        $"pending {Pending?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}, awaiting settle {AwaitingSettle?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}, dead letters [{(DeadLetters is null ? "?" : string.Join(", ", DeadLetters))}]";
}

/// <summary>One dead letter: which command, and the reason when the backend keeps it.</summary>
/// <param name="CommandId">The terminated command's id.</param>
/// <param name="Reason">The reason given at terminate, or null when the backend does not keep it.</param>
public sealed record DeadLetterRecord(string CommandId, string? Reason);
