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
    IOptions<PipelineWorkerOptions> options,
    PipelineWorkerState state,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggers,
    IEnumerable<PipelineWorkerHooks> hooks,
    PipelineModules modules,
    PipelineWorkerSection section,
    ToolRegistryFactory toolRegistry) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger("Pipeline.Hosting");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the host's start path: StartAsync returns while the pipeline runs.
        await Task.Yield();
        var settings = options.Value;
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
            state.Complete();
            if (settings.StopHostWhenDone || state.Fault is not null)
            {
                lifetime.StopApplication();
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
            state.Ended(pipeline.DeadlineReached, ranOut);
            if (ranOut && !stoppingToken.IsCancellationRequested)
            {
                Log.Exhausted(host);
            }

            return new RunEnd(ranOut, pipeline.DeadlineReached);
        }
    }
}
