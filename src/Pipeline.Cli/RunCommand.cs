using System.Diagnostics;
using System.Globalization;
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
            await stderr.WriteLineAsync($"error: cannot read {TerminalText.Escape(inputName)}: {TerminalText.Escape(ex.Message)}");
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
            await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(request.EventsPath)}: {TerminalText.Escape(ex.Message)}");
            return ExitCodes.UsageError;
        }

        await using var sinkScope = eventSink;
        // With events on stdout, the human-facing output moves to stderr.
        var human = request.EventsPath == "-" ? stderr : stdout;
        using var http = Pipeline.Tools.HttpTool.CreateDefaultClient();
        var tools = ToolRegistry.CreateBuiltIn(request.Tools with { HttpClient = http });
        CommandPipeline<DeliveryHandle>? pipeline = null;
        var eventsGuard = eventSink is null ? null : new StopOnSinkFailure(eventSink, () => pipeline?.RequestStop());
        var recorder = new FailureRecorder((IEventSink?)eventsGuard ?? NullEventSink.Instance, keep: RunSummary.MaxListed);
        // The engine's warnings and errors (sink retries, settle failures, a block fault) go to
        // stderr, one escaped line each: they carry command ids and tool errors from the input.
        using var logging = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(LogLevel.Warning)
            .AddConsole(console => (console.LogToStandardErrorThreshold, console.FormatterName) = (LogLevel.Trace, TerminalLogFormatter.FormatterName))
            .AddConsoleFormatter<TerminalLogFormatter, Microsoft.Extensions.Logging.Console.ConsoleFormatterOptions>());
        pipeline = new CommandPipeline<DeliveryHandle>(source, tools, recorder, request.Options, logger: logging.CreateLogger("pipeline"));

        var stop = console.Stop;
        var clock = Stopwatch.StartNew();
        var run = pipeline.RunAsync(cancellationToken);
        await using var onStop = stop.Graceful.Register(() =>
        {
            if (!stop.Now.IsCancellationRequested && stop.First is { } first)
            {
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pipeline: {first.Name}: stopping; commands in flight have {request.Options.ShutdownTimeout.TotalMilliseconds:0} ms to finish (again to stop now)"));
            }
        });
        await using var onStopNow = stop.Now.Register(() =>
        {
            stderr.WriteLine("pipeline: stopping now; commands still open are nacked");
            pipeline.StopNow();
        });
        var interactive = request.Interactive ?? (ReferenceEquals(human, Console.Out) && !Console.IsOutputRedirected);
        await ProgressDisplay.ShowAsync(run, pipeline.Stats, clock, interactive, human);
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

        clock.Stop();

        var summary = RunSummary.From(pipeline.Stats, recorder.Failures, clock.Elapsed) with { Unfinished = recorder.Unfinished };
        var exitCode = summary.AllSucceeded && !faulted ? ExitCodes.Success : ExitCodes.SomeFailed;
        if (eventsGuard?.Failure is { } eventsFailure)
        {
            var eventsName = request.EventsPath == "-" ? "stdout" : request.EventsPath;
            await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(eventsName)}: {TerminalText.Escape(eventsFailure.InnerException?.Message ?? eventsFailure.Message)}; the run stopped.");
            summary = summary with { StoppedBecause = $"because the events file could not be written ({TerminalText.Escape(eventsFailure.InnerException?.Message ?? eventsFailure.Message)})" };
            exitCode = ExitCodes.SomeFailed;
        }
        else if (stop.First is { } stopRequest && (!source.Exhausted || summary.Unfinished > 0 || pipeline.DeadlineReached))
        {
            // A stop cut the run short (input left unread, tools cancelled at the deadline), unless
            // every command was read and drained in time, when the results say how it went.
            summary = summary with { StoppedBecause = $"by {stopRequest.Name} before every command was done" };
            exitCode = stopRequest.ExitCode;
        }

        try
        {
            await summary.WriteAsync(human, inputName, eventSink is null ? null : request.EventsPath == "-" ? "stdout" : request.EventsPath);
        }
        catch (IOException ex)
        {
            // Output to a full disk or a closed pipe: the exit code still says how the run went.
            await stderr.WriteLineAsync($"error: cannot write the summary: {TerminalText.Escape(ex.Message)}");
        }

        return exitCode;
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
