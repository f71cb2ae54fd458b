namespace Pipeline.Cli;

/// <summary>What <c>pipeline</c> exits with.</summary>
public static class ExitCodes
{
    /// <summary>Every command succeeded (or was skipped as handled elsewhere).</summary>
    public const int Success = 0;

    /// <summary>
    /// Some commands failed: a tool failure, a malformed line, an unknown tool, a dropped event; or
    /// a backend could not be used (a store that cannot be opened or written, one <c>error:</c> line).
    /// </summary>
    public const int SomeFailed = 1;

    /// <summary>A usage error or an input that cannot be read.</summary>
    public const int UsageError = 2;

    /// <summary>
    /// <c>pipeline worker</c> ended idle with nothing failed here, but its backend still holds
    /// work (a NATS consumer's messages awaiting an ack, e.g. a killed worker's until their ack wait
    /// ends, or pending; a store's batches another worker claimed or enqueued meanwhile): the work is
    /// not all done. The summary's result line says what the backend offers (<see cref="Pipeline.Modules.WorkLeft.Hint"/>):
    /// run a worker again, or, on NATS, use <c>--exit-when-drained</c>.
    /// </summary>
    public const int WorkLeft = 3;
}
