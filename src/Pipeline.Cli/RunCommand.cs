using Microsoft.Extensions.Logging;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;

namespace Pipeline.Cli;

/// <summary>What <c>pipeline run</c> was asked to do.</summary>
/// <param name="CommandsPath">The JSON Lines file, or '-' for standard input.</param>
/// <param name="EventsPath">The events file, '-' for stdout, or null for none.</param>
/// <param name="Options">The pipeline's options.</param>
/// <param name="Source">The commands reader's options (the line limit).</param>
/// <param name="Tools">The built-in tools' options (shell on or off, the output cap); the HTTP client is the run's own.</param>
/// <param name="Interactive">Live progress, plain lines, or null to decide from the terminal.</param>
internal sealed record RunRequest(string CommandsPath, string? EventsPath, PipelineOptions Options, JsonLinesSourceOptions Source, BuiltInToolOptions Tools, bool? Interactive);

/// <summary>What a run talks to: its output, its error stream, standard input, and stop requests.</summary>
internal sealed record RunConsole(TextWriter Out, TextWriter Error, Func<Stream> OpenStandardInput, StopSignals Stop);

/// <summary><c>pipeline run</c>: the file source, the built-in tools, a JSON Lines event sink, progress and a summary.</summary>
internal static class RunCommand
{
    public static async Task<int> ExecuteAsync(RunRequest request, RunConsole console, CancellationToken cancellationToken)
    {
        var (stdout, stderr) = (console.Out, console.Error);
        var inputName = request.CommandsPath == "-" ? "stdin" : request.CommandsPath;
        JsonLinesFileSource source;
        Stream? standardInput = null;
        try
        {
            source = request.CommandsPath == "-"
                ? JsonLinesFileSource.Open(standardInput = console.OpenStandardInput(), inputName, request.Source)
                : JsonLinesFileSource.Open(request.CommandsPath, request.Source);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: cannot read {TerminalText.Escape(inputName)}: {TerminalText.Escape(FileErrors.Reason(request.CommandsPath, ex))}");
            return ExitCodes.UsageError;
        }

        await using var sourceScope = source;
        if (request.EventsPath is { } eventsPath and not "-" && OverwritesInput(request.CommandsPath, standardInput, eventsPath))
        {
            await stderr.WriteLineAsync($"error: --events names the commands file {TerminalText.Escape(inputName)}; writing events there would overwrite the commands.");
            return ExitCodes.UsageError;
        }

        JsonLinesEventSink? eventSink;
        try
        {
            eventSink = request.EventsPath switch
            {
                null => null,
                "-" => JsonLinesEventSink.StandardOutput(),
                var path => JsonLinesEventSink.CreateFile(path),
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(request.EventsPath)}: {TerminalText.Escape(FileErrors.Reason(request.EventsPath!, ex))}");
            return ExitCodes.UsageError;
        }

        await using var sinkScope = eventSink;
        await using var session = new RunSession(console, eventsOnStdout: request.EventsPath == "-", verb: "run");
        using var http = Pipeline.Tools.HttpTool.CreateDefaultClient();
        var tools = ToolRegistry.CreateBuiltIn(request.Tools with { HttpClient = http });
        CommandPipeline<DeliveryHandle>? pipeline = null;
        var sink = session.Record(eventSink ?? (IEventSink)NullEventSink.Instance, eventSink is null ? null : () => pipeline?.RequestStop());
        // The engine's warnings and errors (sink retries, settle failures, a block fault) go to
        // stderr, one escaped line each: they carry command ids and tool errors from the input.
        using var logging = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(LogLevel.Warning)
            .AddConsole(console => (console.LogToStandardErrorThreshold, console.FormatterName) = (LogLevel.Trace, TerminalLogFormatter.FormatterName))
            .AddConsoleFormatter<TerminalLogFormatter, Microsoft.Extensions.Logging.Console.ConsoleFormatterOptions>());
        pipeline = new CommandPipeline<DeliveryHandle>(source, tools, sink, request.Options, logger: logging.CreateLogger("pipeline"));

        session.Clock.Start();
        var run = pipeline.RunAsync(cancellationToken);
        // The graceful stop is the token RunAsync has; a second signal is the hard deadline now.
        session.OnStop(request.Options.ShutdownTimeout, graceful: static () => { }, now: pipeline.StopNow);
        await session.ShowProgressAsync(run, pipeline.Stats, request.Interactive);
        var faulted = false;
        try
        {
            await run;
        }
        catch (PipelineFaultedException ex)
        {
            // Everything that could be settled was; the summary below says what was done.
            faulted = true;
            await stderr.WriteLineAsync(TerminalText.Escape($"error: {ex.Message} {ex.InnerException?.GetType().Name}: {ex.InnerException?.Message}", 2000));
        }

        session.Clock.Stop();
        var summary = session.Summarize(pipeline.Stats);
        return await session.FinishAsync(
            summary,
            summary.AllSucceeded && !faulted ? ExitCodes.Success : ExitCodes.SomeFailed,
            inputName,
            request.EventsPath == "-" ? "stdout" : request.EventsPath,
            // A stop cut the run short (input left unread, tools cancelled at the deadline), unless
            // every command was read and drained in time, when the results say how it went.
            (stop, done) => !source.Exhausted || done.Unfinished > 0 || pipeline.DeadlineReached
                ? ($"by {stop.Name} before every command was done", stop.ExitCode)
                : (null, null));
    }

    // Whether creating the events file would truncate the commands being read: the commands file,
    // or the file standard input is redirected from ('pipeline run - --events f < f').
    private static bool OverwritesInput(string commandsPath, Stream? standardInput, string eventsPath)
    {
        if (commandsPath != "-")
        {
            return FileIdentity.Same(commandsPath, eventsPath);
        }

        if (standardInput is FileStream file)
        {
            return FileIdentity.Same(file.SafeFileHandle, eventsPath);
        }

        using var descriptor = new Microsoft.Win32.SafeHandles.SafeFileHandle(0, ownsHandle: false);
        return FileIdentity.Same(descriptor, eventsPath);
    }
}
