using Microsoft.Extensions.Logging;

namespace Pipeline.Nats;

/// <summary>Every log message of the NATS integration, with fixed event ids (2000 on).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "NATS fetch failed; retrying in {Delay}")]
    public static partial void FetchFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Terminated stream sequence {Sequence} (delivery {Delivered}): {Reason}")]
    public static partial void Terminated(ILogger logger, ulong sequence, ulong delivered, string reason);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "NATS connection (re)opened; restarting the pull")]
    public static partial void Reconnected(ILogger logger);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning, Message = "Renewing a fetched message failed (stream sequence {Sequence})")]
    public static partial void BufferRenewalFailed(ILogger logger, Exception exception, ulong sequence);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "No message for {Idle}; the source is exhausted")]
    public static partial void Idle(ILogger logger, TimeSpan idle);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Publishing {Count} events failed: {Error}")]
    public static partial void PublishFailed(ILogger logger, int count, string error);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "The {EventType} event of command {CommandId} is {Size} bytes, over the NATS server's max payload ({MaxPayload} bytes): stored with its {Shortened} shortened ({Stored} bytes)")]
    public static partial void EventShortened(ILogger logger, string eventType, string commandId, int size, int maxPayload, string shortened, int stored);
}
