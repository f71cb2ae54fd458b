using System.Diagnostics;
using System.Globalization;
using Pipeline.Engine;
using Pipeline.Events;

namespace Pipeline.Cli;

/// <summary>
/// What <c>pipeline run</c> and <c>pipeline worker</c> share around their pipeline: what a stop
/// signal says and does, the events guard and the failure recorder around the sink, progress,
/// and the summary with the exit code it decides.
/// </summary>
internal sealed class RunSession(RunConsole console, bool eventsOnStdout, string verb) : IAsyncDisposable
{
    private readonly List<CancellationTokenRegistration> _stops = [];
    private StopOnSinkFailure? _guard;
    private FailureRecorder? _recorder;

    /// <summary>Where the progress and the summary go: stdout, or stderr when events are on stdout.</summary>
    public TextWriter Human { get; } = eventsOnStdout ? console.Error : console.Out;

    /// <summary>The run's clock, started by the caller when its work starts.</summary>
    public Stopwatch Clock { get; } = new();

    /// <summary>
    /// Wraps the sink: a write failure of a local events file (or stdout) calls
    /// <paramref name="stopOnFailure"/> (commands run on would leave no record, and back-pressure
    /// would hold the work forever), when given; the failures are kept for the summary.
    /// </summary>
    public IEventSink Record(IEventSink sink, Action? stopOnFailure)
    {
        if (stopOnFailure is not null)
        {
            sink = _guard = new StopOnSinkFailure(sink, stopOnFailure);
        }

        return _recorder = new FailureRecorder(sink, keep: RunSummary.MaxListed);
    }

    /// <summary>The first signal says how long in-flight commands have and calls <paramref name="graceful"/>; the second (or SIGQUIT) says so and calls <paramref name="now"/>.</summary>
    public void OnStop(TimeSpan shutdownTimeout, Action graceful, Action now)
    {
        var (stop, stderr) = (console.Stop, console.Error);
        _stops.Add(stop.Graceful.Register(() =>
        {
            if (!stop.Now.IsCancellationRequested && stop.First is { } first)
            {
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pipeline: {first.Name}: stopping; commands in flight have {shutdownTimeout.TotalMilliseconds:0} ms to finish (again to stop now)"));
            }

            graceful();
        }));
        _stops.Add(stop.Now.Register(() =>
        {
            stderr.WriteLine("pipeline: stopping now; commands still open are nacked");
            now();
        }));
    }

    /// <summary>Progress until <paramref name="running"/> ends: live on a terminal, plain lines otherwise (every <paramref name="every"/>).</summary>
    public Task ShowProgressAsync(Task running, PipelineStats stats, bool? interactive, TimeSpan? every = null, string title = "pipeline run")
    {
        var live = interactive ?? (ReferenceEquals(Human, Console.Out) && !Console.IsOutputRedirected);
        return ProgressDisplay.ShowAsync(running, stats, Clock, live, Human, every, title);
    }

    /// <summary>The summary of <paramref name="stats"/>, with the failures and the unfinished runs the recorder saw.</summary>
    public RunSummary Summarize(PipelineStats stats) =>
        RunSummary.From(stats, _recorder?.Failures ?? [], Clock.Elapsed) with { Unfinished = _recorder?.Unfinished ?? 0 };

    /// <summary>
    /// Writes the summary and returns the exit code: <paramref name="exitCode"/>, unless the
    /// events could not be written (1, the run said stopped because of it) or a stop came, when
    /// <paramref name="stopped"/> says why the summary says it stopped and the exit code it gets (null: unchanged).
    /// </summary>
    /// <param name="summary">The summary.</param>
    /// <param name="exitCode">The exit code by the results.</param>
    /// <param name="subject">What was run: the commands file, the server.</param>
    /// <param name="eventsName">Where events went; null for nowhere.</param>
    /// <param name="stopped">For the first stop request: the summary's reason and the exit code, each null to leave as is.</param>
    public async Task<int> FinishAsync(RunSummary summary, int exitCode, string subject, string? eventsName, Func<StopRequest, RunSummary, (string? Because, int? ExitCode)> stopped)
    {
        if (_guard?.Failure is { } eventsFailure)
        {
            var why = TerminalText.Escape(eventsFailure.InnerException?.Message ?? eventsFailure.Message);
            await console.Error.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(eventsName)}: {why}; the {verb} stopped.");
            summary = summary with { StoppedBecause = $"because the events file could not be written ({why})" };
            exitCode = ExitCodes.SomeFailed;
        }
        else if (console.Stop.First is { } request)
        {
            var (because, code) = stopped(request, summary);
            summary = summary with { StoppedBecause = because };
            exitCode = code ?? exitCode;
        }

        try
        {
            await summary.WriteAsync(Human, subject, eventsName, verb);
        }
        catch (IOException ex)
        {
            // Output to a full disk or a closed pipe: the exit code still says how the run went.
            await console.Error.WriteLineAsync($"error: cannot write the summary: {TerminalText.Escape(ex.Message)}");
        }

        return exitCode;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var registration in _stops)
        {
            await registration.DisposeAsync();
        }
    }
}
