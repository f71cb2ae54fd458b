using Microsoft.Extensions.Logging;

namespace Pipeline.Hosting;

/// <summary>The hosted worker's log messages, with fixed event ids (2000s: hosting; a module's start-up and shut-down messages keep theirs, 2002-2008 and 2020 for NATS).</summary>
internal static partial class Log
{
    /// <summary>The category of the worker's own messages.</summary>
    public const string Category = "Pipeline.Hosting";

    /// <summary>The id of <see cref="Faulted"/>: a command line that reports the fault itself leaves this line out.</summary>
    public const int FaultedId = 2005;

    [LoggerMessage(2001, LogLevel.Information, "worker {WorkerId}: {Source} source, events {Events}")]
    public static partial void Starting(ILogger logger, string workerId, string source, string events);

    [LoggerMessage(FaultedId, LogLevel.Error, "the worker stopped with an error")]
    public static partial void Faulted(ILogger logger, Exception exception);

    [LoggerMessage(2006, LogLevel.Information, "worker done: the source is exhausted (the file was read, or nothing arrived for the idle timeout)")]
    public static partial void Exhausted(ILogger logger);

    [LoggerMessage(2010, LogLevel.Error, "the worker's settings cannot work, so it did not start ({Count} to fix): {Errors}")]
    public static partial void SettingsInvalid(ILogger logger, int count, string errors);

    [LoggerMessage(2011, LogLevel.Warning, "settings under Pipeline that nothing reads, ignored: {Keys}")]
    public static partial void UnknownSettings(ILogger logger, string keys);

    [LoggerMessage(2012, LogLevel.Information, "worker ended: {Outcome}, exit code {ExitCode}")]
    public static partial void Ended(ILogger logger, PipelineWorkerOutcome outcome, int exitCode);
}
