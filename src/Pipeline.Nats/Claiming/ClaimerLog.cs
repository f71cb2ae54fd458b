using Microsoft.Extensions.Logging;

namespace Pipeline.Nats;

/// <summary>The KV claimer's log messages (event ids 2101 on; the rest of the NATS integration's are in Log.cs).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Took over the claim of {CommandId} from worker {Worker} (instance {Instance}, stream sequence {Sequence}): its heartbeat is gone, so the command runs again here")]
    public static partial void ClaimTakenOver(ILogger logger, string commandId, string worker, string instance, string sequence);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "The claimer's heartbeat in bucket {Bucket} failed; past {Timeout} without one, other workers take this worker's claims for gone")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, string bucket, TimeSpan timeout);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Information, Message = "The claimer's heartbeat in bucket {Bucket} works again")]
    public static partial void HeartbeatRecovered(ILogger logger, string bucket);

    [LoggerMessage(EventId = 2104, Level = LogLevel.Debug, Message = "The claim of {CommandId} is no longer this delivery's (released, taken over or claimed again); {What} not written")]
    public static partial void ClaimSuperseded(ILogger logger, string commandId, string what);
}
