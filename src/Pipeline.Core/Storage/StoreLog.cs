using Microsoft.Extensions.Logging;

namespace Pipeline.Storage;

/// <summary>Every log message of the store source, with fixed event ids (3000 on).</summary>
internal static partial class StoreLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "The {Store} store could not be reached ({Error}); retrying in {Delay}")]
    public static partial void Unreachable(ILogger logger, string store, string error, TimeSpan delay);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "The {Store} store refused the claim for good; the source ends")]
    public static partial void Failed(ILogger logger, string store, Exception exception);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Nothing ready in the {Store} store for {Idle} and nothing left to do; the source is exhausted")]
    public static partial void Idle(ILogger logger, string store, TimeSpan idle);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Batch {BatchId} was re-claimed by another worker (fence {Fence} superseded); this worker's settle changed nothing")]
    public static partial void FencedOut(ILogger logger, string batchId, long fence);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "The lease of batch {BatchId} (fence {Fence}) lapsed and was taken over while it ran; its settle will change nothing")]
    public static partial void LeaseLost(ILogger logger, string batchId, long fence);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "The lease of batch {BatchId} (fence {Fence}) lapsed while it waited to start; it was not started here")]
    public static partial void LapsedBeforeStart(ILogger logger, string batchId, long fence);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Writing {Count} settles failed; their leases lapse and the batches are claimed again")]
    public static partial void SettleFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Warning, Message = "The {Store} store {Where} cannot be opened yet ({Error}); retrying in {Delay}")]
    public static partial void OpenRetrying(ILogger logger, string store, string where, string error, TimeSpan delay);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Warning, Message = "The {Store} store's summary could not be read at the idle end ({Error}); what it still holds is unknown")]
    public static partial void SummaryUnknown(ILogger logger, string store, string error);
}
