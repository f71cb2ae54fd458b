namespace Pipeline.Commands;

/// <summary>The four ways a claim can end.</summary>
public enum ClaimOutcomeKind
{
    /// <summary>This worker owns the command: dispatch it.</summary>
    Claimed,

    /// <summary>Another worker owns it: ack and skip.</summary>
    AlreadyClaimed,

    /// <summary>The claim failed transiently: nack so it is redelivered.</summary>
    RetryLater,

    /// <summary>The claim failed terminally: nack (or terminate) and emit a diagnostic event.</summary>
    Failed,
}

/// <summary>
/// Outcome of claiming one pulled command. A struct so the hot path allocates nothing for it;
/// create it through the four factory methods.
/// </summary>
public readonly struct ClaimOutcome : IEquatable<ClaimOutcome>
{
    private ClaimOutcome(ClaimOutcomeKind kind, Command? command, string? reason)
    {
        Kind = kind;
        Command = command;
        Reason = reason;
    }

    /// <summary>Which of the four outcomes this is.</summary>
    public ClaimOutcomeKind Kind { get; }

    /// <summary>The command, for <see cref="ClaimOutcomeKind.Claimed"/>; otherwise the command when the source knows it, else null.</summary>
    public Command? Command { get; }

    /// <summary>Why, for <see cref="ClaimOutcomeKind.RetryLater"/> and <see cref="ClaimOutcomeKind.Failed"/>.</summary>
    public string? Reason { get; }

    /// <summary>This worker owns <paramref name="command"/>.</summary>
    public static ClaimOutcome Claimed(Command command) =>
        new(ClaimOutcomeKind.Claimed, command ?? throw new ArgumentNullException(nameof(command)), null);

    /// <summary>Another worker owns the command. <paramref name="command"/> is optional context for events.</summary>
    public static ClaimOutcome AlreadyClaimed(Command? command = null) =>
        new(ClaimOutcomeKind.AlreadyClaimed, command, null);

    /// <summary>Transient failure; the item should be redelivered.</summary>
    public static ClaimOutcome RetryLater(string reason, Command? command = null) =>
        new(ClaimOutcomeKind.RetryLater, command, reason ?? throw new ArgumentNullException(nameof(reason)));

    /// <summary>Terminal failure (malformed command, permission denied, ...).</summary>
    public static ClaimOutcome Failed(string reason, Command? command = null) =>
        new(ClaimOutcomeKind.Failed, command, reason ?? throw new ArgumentNullException(nameof(reason)));

    /// <inheritdoc/>
    public bool Equals(ClaimOutcome other) =>
        Kind == other.Kind && Equals(Command, other.Command) && Reason == other.Reason;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ClaimOutcome other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, Command, Reason);

    /// <inheritdoc/>
    public override string ToString() => Reason is null ? $"{Kind}" : $"{Kind}({Reason})";

    /// <summary>Equality.</summary>
    public static bool operator ==(ClaimOutcome left, ClaimOutcome right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ClaimOutcome left, ClaimOutcome right) => !left.Equals(right);
}
