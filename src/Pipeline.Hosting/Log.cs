using Microsoft.Extensions.Logging;

namespace Pipeline.Hosting;

/// <summary>The hosted worker's log messages, with fixed event ids (2000s: hosting).</summary>
internal static partial class Log
{
    [LoggerMessage(2001, LogLevel.Information, "worker {WorkerId}: {Source} source, events {Events}")]
    public static partial void Starting(ILogger logger, string workerId, string source, string events);

    [LoggerMessage(2002, LogLevel.Warning, "NATS at {Url} unreachable ({State}); retrying with backoff, work goes on when it is back")]
    public static partial void NatsDisconnected(ILogger logger, string url, string state);

    [LoggerMessage(2003, LogLevel.Warning, "NATS at {Url} still unreachable after {Seconds:0} s; retrying with backoff")]
    public static partial void NatsStillDown(ILogger logger, string url, double seconds);

    [LoggerMessage(2004, LogLevel.Warning, "NATS at {Url} connected again after {Seconds:0} s away")]
    public static partial void NatsReconnected(ILogger logger, string url, double seconds);

    [LoggerMessage(2008, LogLevel.Warning, "NATS at {Url} connected for the first time, after {Seconds:0} s of retrying")]
    public static partial void NatsConnected(ILogger logger, string url, double seconds);

    [LoggerMessage(2005, LogLevel.Error, "the worker stopped with an error")]
    public static partial void Faulted(ILogger logger, Exception exception);

    [LoggerMessage(2007, LogLevel.Warning, "NATS stream or consumer not bound at start ({Reason}); the fetch loop retries with backoff")]
    public static partial void BindFailed(ILogger logger, string reason);

    [LoggerMessage(2006, LogLevel.Information, "worker done: the source is exhausted (the file was read, or nothing arrived for the idle timeout)")]
    public static partial void Exhausted(ILogger logger);

    [LoggerMessage(2020, LogLevel.Warning, "the consumer's state could not be read at the idle end ({Reason}); what it still holds is unknown")]
    public static partial void ConsumerStateUnknown(ILogger logger, string reason);
}
