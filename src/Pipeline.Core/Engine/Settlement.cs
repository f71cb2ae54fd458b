namespace Pipeline.Engine;

/// <summary>How a handle is settled.</summary>
internal enum SettleAction
{
    None,
    Ack,
    Nack,
    Terminate,
}

/// <summary>
/// A decision about one handle, made by a stage and carried out by the one <see cref="Settler{THandle}"/>:
/// ack, nack (redeliver, after <see cref="Delay"/> where the source can wait), or terminate (a
/// poison item, never redelivered), with the reason.
/// </summary>
internal readonly record struct Settlement(SettleAction Action, TimeSpan Delay = default, string? Reason = null)
{
    public static Settlement Ack => new(SettleAction.Ack);

    public static Settlement Nack(TimeSpan delay, string? reason = null) => new(SettleAction.Nack, delay, reason);

    public static Settlement Terminate(string reason) => new(SettleAction.Terminate, Reason: reason);
}

/// <summary>Who settles: a stage deciding a handle's fate, a stop handing back what has not started, or the end of the run.</summary>
internal enum SettleOrigin
{
    /// <summary>A stage's decision; a second settle of the same handle is a counted duplicate.</summary>
    Stage,

    /// <summary>A stop handing back a command before its tool started (counted as handed back).</summary>
    HandBack,

    /// <summary>The sweep at the end of a run or at a faulted block (counted as a deadline settle).</summary>
    EndOfRun,
}
