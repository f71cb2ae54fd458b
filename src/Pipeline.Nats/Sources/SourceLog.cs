using Microsoft.Extensions.Logging;

namespace Pipeline.Nats;

/// <summary>The source's idle-and-drain log messages (event ids 2121 on; the rest of the NATS integration's are in Log.cs).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2121, Level = LogLevel.Information, Message = "Idle, but the consumer still holds work: {What}; waiting for it to come back (at most {Drain} with nothing arriving)")]
    public static partial void WaitingForConsumer(ILogger logger, string what, TimeSpan drain);

    [LoggerMessage(EventId = 2122, Level = LogLevel.Warning, Message = "Nothing arrived for the drain timeout ({Drain}) while the consumer still held work; ending anyway")]
    public static partial void DrainGaveUp(ILogger logger, TimeSpan? drain);
}
