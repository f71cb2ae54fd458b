using System.Globalization;

namespace Pipeline.Modules;

/// <summary>
/// What a backend still held when a run ended by itself (an idle end), by the backend's own
/// count: work started elsewhere and not yet settled (a dead worker's, awaiting redelivery), and
/// work not yet handed out. A batch job that is told "all done" while this holds work is misled.
/// </summary>
/// <param name="Holder">What holds it, as the summary's line is headed (<c>consumer</c>, <c>store</c>).</param>
/// <param name="Name">Its name (the consumer's, the queue's).</param>
/// <param name="InProgress">Handed out and not yet settled.</param>
/// <param name="Waiting">Not yet handed out.</param>
/// <param name="Redelivered">Of those in progress, how many were handed out more than once.</param>
public sealed record WorkLeft(string Holder, string Name, long InProgress, long Waiting, long Redelivered)
{
    /// <summary>What the backend calls <see cref="InProgress"/> (NATS: <c>awaiting ack</c>). Default <c>in progress</c>.</summary>
    public string InProgressAs { get; init; } = "in progress";

    /// <summary>What the backend calls <see cref="Waiting"/> (NATS: <c>pending</c>). Default <c>waiting</c>.</summary>
    public string WaitingAs { get; init; } = "waiting";

    /// <summary>
    /// What to do about it, as the summary's result line ends: what this backend offers (NATS:
    /// <c>run a worker again, or use --exit-when-drained</c>). Default <c>run a worker again</c>.
    /// </summary>
    public string Hint { get; init; } = "run a worker again";

    /// <summary>Everything left.</summary>
    public long Held => InProgress + Waiting;

    /// <summary>Whether anything is left.</summary>
    public bool HoldsWork => Held > 0;

    /// <summary>One line: <c>pipeline-workers: 1104 awaiting ack, 6 pending (2 of them redelivered)</c>.</summary>
    public string Describe() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Name}: {InProgress} {InProgressAs}, {Waiting} {WaitingAs}{(Redelivered > 0 ? $" ({Redelivered} of them redelivered)" : "")}");
}
