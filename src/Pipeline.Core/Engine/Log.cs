using Microsoft.Extensions.Logging;

namespace Pipeline.Engine;

/// <summary>Every message the engine logs, with fixed event ids (source-generated: nothing is formatted unless the level is on).</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Warning, "NextAsync failed; retrying in {Delay}.")]
    public static partial void PullFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(2, LogLevel.Warning, "{Action} of {CommandId} failed; the source's redelivery decides what happens to it.")]
    public static partial void SettleFailed(ILogger logger, Exception exception, SettleAction action, string? commandId);

    [LoggerMessage(3, LogLevel.Warning, "{Action} of {CommandId} did not return within {Timeout}; counted as a settle error.")]
    public static partial void SettleTimedOut(ILogger logger, SettleAction action, string? commandId, TimeSpan timeout);

    [LoggerMessage(4, LogLevel.Warning, "Keep-alive of an open delivery failed.")]
    public static partial void KeepAliveFailed(ILogger logger, Exception exception);

    [LoggerMessage(5, LogLevel.Warning, "The event sink failed; retrying in {Delay}.")]
    public static partial void SinkRetrying(ILogger logger, Exception? exception, TimeSpan delay);

    [LoggerMessage(6, LogLevel.Error, "The event sink failed; {Count} events dropped.")]
    public static partial void EventsDropped(ILogger logger, Exception? exception, int count);

    [LoggerMessage(7, LogLevel.Critical, "The {Block} block failed on {CommandId}; its handle was settled (nack) and the run goes on.")]
    public static partial void InternalError(ILogger logger, Exception exception, string block, string? commandId);

    [LoggerMessage(8, LogLevel.Critical, "The {Block} block faulted; the pipeline stops, settles what it can and throws.")]
    public static partial void BlockFaulted(ILogger logger, Exception exception, string block);

    // Debug: one warning per run says how many (SettledAtEndCount); a line per command flooded the log at the deadline.
    [LoggerMessage(9, LogLevel.Debug, "{CommandId} was still open at the end of the run ({Reason}); nacked.")]
    public static partial void SettledAtEnd(ILogger logger, string? commandId, string reason);

    [LoggerMessage(10, LogLevel.Warning, "The shutdown deadline passed with {Open} deliveries open; cancelling tools and claims, nacking what is open.")]
    public static partial void DeadlineReached(ILogger logger, int open);

    [LoggerMessage(11, LogLevel.Debug, "A second {Action} of {CommandId} was refused: the handle was already settled.")]
    public static partial void DuplicateSettle(ILogger logger, SettleAction action, string? commandId);

    [LoggerMessage(12, LogLevel.Warning, "{Count} commands were still open at the end of the run ({Reason}); nacked.")]
    public static partial void SettledAtEndCount(ILogger logger, int count, string reason);

    [LoggerMessage(13, LogLevel.Warning, "The claimer failed to record the {What} claim of {CommandId}; the settle goes ahead.")]
    public static partial void ClaimRecordFailed(ILogger logger, Exception exception, string what, string? commandId);

    [LoggerMessage(14, LogLevel.Information, "Stopping: {Count} commands that had not started were handed back.")]
    public static partial void HandedBack(ILogger logger, long count);

    [LoggerMessage(15, LogLevel.Warning, "The source did not stop pulling cleanly; handing back what has not started all the same.")]
    public static partial void StopPullingFailed(ILogger logger, Exception exception);

    [LoggerMessage(16, LogLevel.Warning, "The event sink's own callback on its deadline token threw; the run goes on.")]
    public static partial void SinkDeadlineCallbackFailed(ILogger logger, Exception exception);
}
