using Microsoft.Extensions.Logging;

namespace Pipeline.Hosting;

/// <summary>The hosted worker's log messages, with fixed event ids (2000s: hosting; a module's start-up and shut-down messages keep theirs, 2002-2008 and 2020 for NATS).</summary>
internal static partial class Log
{
    [LoggerMessage(2001, LogLevel.Information, "worker {WorkerId}: {Source} source, events {Events}")]
    public static partial void Starting(ILogger logger, string workerId, string source, string events);

    [LoggerMessage(2005, LogLevel.Error, "the worker stopped with an error")]
    public static partial void Faulted(ILogger logger, Exception exception);

    [LoggerMessage(2006, LogLevel.Information, "worker done: the source is exhausted (the file was read, or nothing arrived for the idle timeout)")]
    public static partial void Exhausted(ILogger logger);
}
