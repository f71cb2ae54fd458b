using Microsoft.Extensions.Logging;

namespace Pipeline.Nats.Modules;

/// <summary>The NATS module's start-up and shut-down messages, logged on the host's logger with the ids the hosted worker always gave them.</summary>
internal static partial class NatsModuleLog
{
    [LoggerMessage(2002, LogLevel.Warning, "NATS at {Url} unreachable ({State}); retrying with backoff, work goes on when it is back")]
    public static partial void Disconnected(ILogger logger, string url, string state);

    [LoggerMessage(2003, LogLevel.Warning, "NATS at {Url} still unreachable after {Seconds:0} s; retrying with backoff")]
    public static partial void StillDown(ILogger logger, string url, double seconds);

    [LoggerMessage(2004, LogLevel.Warning, "NATS at {Url} connected again after {Seconds:0} s away")]
    public static partial void Reconnected(ILogger logger, string url, double seconds);

    [LoggerMessage(2008, LogLevel.Warning, "NATS at {Url} connected for the first time, after {Seconds:0} s of retrying")]
    public static partial void Connected(ILogger logger, string url, double seconds);

    [LoggerMessage(2007, LogLevel.Warning, "NATS stream or consumer not bound at start ({Reason}); the fetch loop retries with backoff")]
    public static partial void BindFailed(ILogger logger, string reason);

    [LoggerMessage(2020, LogLevel.Warning, "the consumer's state could not be read at the idle end ({Reason}); what it still holds is unknown")]
    public static partial void ConsumerStateUnknown(ILogger logger, string reason);
}
