using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;

namespace Pipeline.Cli;

/// <summary>What <c>pipeline run</c> was asked to do.</summary>
/// <param name="CommandsPath">The JSON Lines file.</param>
/// <param name="EventsPath">The events file, '-' for stdout, or null for none.</param>
/// <param name="Options">The pipeline's options.</param>
/// <param name="EnableShell">Whether the shell tool is registered.</param>
/// <param name="Interactive">Live progress, plain lines, or null to decide from the terminal.</param>
internal sealed record RunRequest(string CommandsPath, string? EventsPath, PipelineOptions Options, bool EnableShell, bool? Interactive);

/// <summary><c>pipeline run</c>: the file source, the built-in tools, a JSON Lines event sink, progress and a summary.</summary>
internal static class RunCommand
{
    public static async Task<int> ExecuteAsync(RunRequest request, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        JsonLinesFileSource source;
        try
        {
            source = JsonLinesFileSource.Open(request.CommandsPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: cannot read {request.CommandsPath}: {ex.Message}");
            return ExitCodes.UsageError;
        }

        await using var sourceScope = source;
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
            await stderr.WriteLineAsync($"error: cannot write events to {request.EventsPath}: {ex.Message}");
            return ExitCodes.UsageError;
        }

        await using var sinkScope = eventSink;
        // With events on stdout, the human-facing output moves to stderr.
        var human = request.EventsPath == "-" ? stderr : stdout;
        using var http = Pipeline.Tools.HttpTool.CreateDefaultClient();
        var tools = ToolRegistry.CreateBuiltIn(new BuiltInToolOptions { EnableShell = request.EnableShell, HttpClient = http });
        var recorder = new FailureRecorder((IEventSink?)eventSink ?? NullEventSink.Instance, keep: RunSummary.MaxListed);
        // The engine's warnings and errors (sink retries, settle failures, a block fault) go to stderr.
        using var logging = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(LogLevel.Warning)
            .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
            .AddSimpleConsole(console => console.SingleLine = true));
        var pipeline = new CommandPipeline<DeliveryHandle>(source, tools, recorder, request.Options, logger: logging.CreateLogger("pipeline"));

        var clock = Stopwatch.StartNew();
        var run = pipeline.RunAsync(cancellationToken);
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
            await stderr.WriteLineAsync($"error: {ex.Message} {ex.InnerException?.GetType().Name}: {ex.InnerException?.Message}");
        }

        clock.Stop();

        var summary = RunSummary.From(pipeline.Stats, recorder.Failures, clock.Elapsed);
        await summary.WriteAsync(human, request.CommandsPath, eventSink is null ? null : request.EventsPath);
        return summary.AllSucceeded && !faulted ? ExitCodes.Success : ExitCodes.SomeFailed;
    }
}
