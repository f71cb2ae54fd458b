using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Claiming;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Modules;
using Pipeline.Sources;

namespace Pipeline.Hosting;

/// <summary>
/// Runs one <see cref="CommandPipeline{THandle}"/> over the configured source for the host's
/// life. The host's stop (SIGTERM, Ctrl+C, <c>StopApplication</c>) is the pipeline's graceful
/// stop: no more pulls, in-flight commands get <see cref="PipelineOptions.ShutdownTimeout"/> to
/// finish while keep-alives go on, what cannot finish is nacked, events are flushed. The source,
/// the claimer and the sink come from the registered modules (<see cref="IPipelineModule"/>):
/// the worker knows no backend.
/// </summary>
internal sealed class PipelineWorker(
    PipelineWorkerState state,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggers,
    IEnumerable<PipelineWorkerHooks> hooks,
    IEnumerable<IValidateOptions<PipelineWorkerOptions>> validators,
    PipelineModules modules,
    PipelineWorkerSection section,
    ToolRegistryFactory toolRegistry) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger(Log.Category);
    private readonly List<PosixSignalRegistration> _signals = [];
    private PipelineWorkerOptions _settings = new();
    private int _signal;

    /// <summary>
    /// Checks the settings before anything runs: every error in one log line, exit code 2 and the
    /// host stopped, never an exception out of the host's start (<c>host.Run()</c> would end in an
    /// unhandled exception and a stack trace). Files are checked here too, before the run opens
    /// (and empties) the events file.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _settings = section.CreateOptions();
        if (section.Configuration is { } configuration)
        {
            var known = modules.All.Select(m => m.Section).OfType<ModuleSection>().DistinctBy(m => m.Name, StringComparer.OrdinalIgnoreCase).ToDictionary(m => m.Name, m => m.Options, StringComparer.OrdinalIgnoreCase);
            var path = (configuration as IConfigurationSection)?.Path ?? PipelineWorkerOptions.SectionName;
            if (SettingsBinder.FindUnknownKeys(configuration, path, typeof(PipelineWorkerOptions), known) is { Count: > 0 } unknown)
            {
                Log.UnknownSettings(_logger, string.Join(", ", unknown));
            }
        }

        var errors = validators.Select(v => v.Validate(Options.DefaultName, _settings)).Where(r => r.Failed).SelectMany(r => r.Failures ?? [r.FailureMessage ?? "the settings are invalid."]).Distinct().ToList();
        if (errors.Count > 0)
        {
            Log.SettingsInvalid(_logger, errors.Count, string.Join(" ", errors));
            state.Refuse(errors);
            SetExitCode();
            state.Complete();
            lifetime.StopApplication();
            return Task.CompletedTask;
        }

        WatchSignals();
        return base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        foreach (var registration in _signals)
        {
            registration.Dispose();
        }

        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the host's start path: StartAsync returns while the pipeline runs.
        await Task.Yield();
        var settings = _settings;
        try
        {
            await RunAsync(settings, stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Never let it escape: the host would log it and stop with no summary.
            state.Fail(ex);
            Log.Faulted(_logger, ex);
        }
        finally
        {
            state.Conclude(state.Started.IsCompletedSuccessfully ? state.Started.Result : null, Volatile.Read(ref _signal) is var signal and > 0 ? signal : null);
            Log.Ended(_logger, state.Outcome, state.ExitCode);
            SetExitCode();
            state.Complete();
            if (settings.StopHostWhenDone || state.Fault is not null)
            {
                lifetime.StopApplication();
            }
        }
    }

    private void SetExitCode()
    {
        if (_settings.SetExitCode)
        {
            // What host.Run() hands the OS when Main returns nothing.
            Environment.ExitCode = state.ExitCode;
        }
    }

    // Which signal stopped the host, for the exit code of a stop that cut work off (128 + it, as
    // the CLI exits). The host's own handlers still stop it: these only look.
    private void WatchSignals()
    {
        foreach (var (signal, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGQUIT, 3), (PosixSignal.SIGHUP, 1) })
        {
            try
            {
                _signals.Add(PosixSignalRegistration.Create(signal, _ => Interlocked.CompareExchange(ref _signal, number, 0)));
            }
            catch (Exception ex) when (ex is PlatformNotSupportedException or IOException)
            {
                // Not on this platform: a cut-off stop exits 1.
            }
        }
    }

    private async Task RunAsync(PipelineWorkerOptions settings, CancellationToken stoppingToken)
    {
        // Every tool registered in DI (AddPipelineTool), the built-in ones included (AddPipelineBuiltInTools).
        var tools = toolRegistry.Create();
        var setup = WorkerModules.Prepare(modules, settings, section.Configuration);
        // Closed when the run ends, newest first: the source and its connections, then the sink's last flush.
        await using var run = await setup.OpenAsync(new ModuleRunContext(loggers, _logger)).ConfigureAwait(false);
        var sink = run.CreateSink();
        foreach (var hook in hooks)
        {
            sink = hook.WrapSink?.Invoke(sink) ?? sink;
        }

        var engine = settings.Engine;
        Log.Starting(_logger, engine.WorkerId, $"{settings.Source.Trim().ToLowerInvariant()} {setup.Source}", settings.Events ?? "none");
        var runner = new Runner(state, tools, sink, run.CreateClaimer, engine, loggers.CreateLogger("pipeline"), _logger, stoppingToken);
        state.WorkLeft = await run.RunSourceAsync(runner, stoppingToken).ConfigureAwait(false);
    }

    /// <summary>The pipeline over a module's source, with the worker's tools, sink, claimer and options.</summary>
    private sealed class Runner(PipelineWorkerState state, ToolRegistry tools, IEventSink sink, Func<IClaimer?> claimer, PipelineOptions engine, ILogger logger, ILogger host, CancellationToken stoppingToken) : IPipelineRunner
    {
        private int _ran;

        public async Task<RunEnd> RunAsync<THandle>(ICommandSource<THandle> source, Func<bool>? exhausted = null)
        {
            if (Interlocked.Exchange(ref _ran, 1) != 0)
            {
                throw new InvalidOperationException("A worker runs one pipeline.");
            }

            var pipeline = new CommandPipeline<THandle>(source, tools, sink, engine, claimer(), logger: logger);
            state.Attach(pipeline);
            await pipeline.RunAsync(stoppingToken).ConfigureAwait(false);
            // Ended without a stop: the source ran out (a read file, an idle NATS source).
            var ranOut = !stoppingToken.IsCancellationRequested || (exhausted?.Invoke() ?? false);
            // A source that ends by itself (a file) stopped before its end left commands unrun, as
            // 'pipeline run' says; one that runs until stopped (a queue) keeps them for the next worker.
            state.Ended(pipeline.DeadlineReached, ranOut, leftUnread: exhausted is not null && !ranOut);
            if (ranOut && !stoppingToken.IsCancellationRequested)
            {
                Log.Exhausted(host);
            }

            return new RunEnd(ranOut, pipeline.DeadlineReached);
        }
    }
}
