using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using Pipeline.Claiming;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Nats.Claiming;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Events;
using Pipeline.Nats.Sources;
using Pipeline.Sources;

namespace Pipeline.Hosting;

/// <summary>
/// Runs one <see cref="CommandPipeline{THandle}"/> over the configured source for the host's
/// life. The host's stop (SIGTERM, Ctrl+C, <c>StopApplication</c>) is the pipeline's graceful
/// stop: no more pulls, in-flight commands get <see cref="PipelineOptions.ShutdownTimeout"/> to
/// finish while keep-alives go on, what cannot finish is nacked, events are flushed.
/// </summary>
internal sealed class PipelineWorker(
    IOptions<PipelineWorkerOptions> options,
    PipelineWorkerState state,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggers,
    IEnumerable<PipelineWorkerHooks> hooks) : BackgroundService
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
        using var http = Pipeline.Tools.HttpTool.CreateDefaultClient();
        var tools = ToolRegistry.CreateBuiltIn(new BuiltInToolOptions
        {
            EnableShell = settings.Tools.EnableShell,
            MaxOutputBytes = settings.Tools.MaxOutputBytes,
            HttpClient = http,
        });
        await using var owned = new Owned();
        var kind = settings.Source.Trim().ToLowerInvariant();
        var connection = settings.Nats.Connection;
        NatsConnection? side = null;
        if (kind == SourceKinds.Nats || settings.Events == "nats")
        {
            // Claims and event publishes on their own connection: a busy consumer's socket
            // must not hold them up (nats-notes.md, "Faults").
            side = owned.Add(Connect(connection!, "events"));
        }

        IEventSink sink = settings.Events switch
        {
            null => NullEventSink.Instance,
            "nats" => owned.AddDisposable(new NatsEventSink(side!, settings.Nats.Events, loggers.CreateLogger("pipeline"))),
            "-" => owned.Add(JsonLinesEventSink.StandardOutput()),
            var path => owned.Add(JsonLinesEventSink.CreateFile(path)),
        };
        foreach (var hook in hooks)
        {
            sink = hook.WrapSink?.Invoke(sink) ?? sink;
        }

        var engine = settings.Engine;
        var logger = loggers.CreateLogger("pipeline");
        Log.Starting(_logger, engine.WorkerId, kind == SourceKinds.Nats ? $"nats {connection!.DisplayUrl} stream {settings.Nats.Source.Stream} consumer {settings.Nats.Source.Consumer}" : $"file {settings.CommandsFile}", settings.Events ?? "none");
        if (kind == SourceKinds.Nats)
        {
            var consumer = owned.Add(Connect(connection!, "consumer"));
            // One connection reports the server's state; the other would say the same twice.
            using var watching = new CancellationTokenSource();
            var watch = new ConnectionWatch(consumer, connection!.DisplayUrl, _logger).WatchAsync(watching.Token);
            try
            {
                await RunNatsAsync(settings, consumer, side, owned, tools, sink, logger, stoppingToken).ConfigureAwait(false);
            }
            finally
            {
                await watching.CancelAsync().ConfigureAwait(false);
                await watch.ConfigureAwait(false);
            }
        }
        else
        {
            var source = owned.Add(JsonLinesFileSource.Open(settings.CommandsFile!));
            var pipeline = new CommandPipeline<DeliveryHandle>(source, tools, sink, engine, logger: logger);
            await RunPipelineAsync(pipeline, () => source.Exhausted, stoppingToken).ConfigureAwait(false);
        }
    }

    private async Task RunNatsAsync(PipelineWorkerOptions settings, NatsConnection consumer, NatsConnection? side, Owned owned, ToolRegistry tools, IEventSink sink, ILogger logger, CancellationToken stoppingToken)
    {
        var connection = settings.Nats.Connection!;
        var engine = settings.Engine;
        try
        {
            // Connected before the source exists, so a stop before the server is reached ends
            // here with nothing pulled. (The source's idle clock starts at its first fetch.)
            // With an idle timeout (a batch job) a server that cannot be reached within it is
            // an error, not a wait forever: nothing can arrive from it.
            var connecting = consumer.ConnectAsync().AsTask().WaitAsync(stoppingToken);
            if (settings.Nats.Source.IdleTimeout is { } idle)
            {
                connecting = connecting.WaitAsync(idle, stoppingToken);
            }

            await connecting.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return; // stopped before the server was reached: nothing was pulled
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"NATS at {connection.DisplayUrl} was not reached within the idle timeout ({settings.Nats.Source.IdleTimeout!.Value.TotalSeconds:0.###} s); nothing was pulled.");
        }

        var source = owned.Add(new NatsCommandSource(consumer, settings.Nats.Source, logger: logger));
        try
        {
            // Bound now, so a stream or consumer that bind-only cannot find is an error at
            // start (InvalidOperationException, naming them), not a warning a second while the
            // worker reports success.
            await source.InitializeAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex) when (ex is not InvalidOperationException)
        {
            // Anything else (a server restarting, a slow reply): the fetch loop binds again with backoff.
            Log.BindFailed(_logger, ex.Message);
        }

        // Disposed before the source and the connections, after the pipeline has ended: its
        // heartbeat is deleted then, so what it still holds is free to the pool at once.
        IClaimer? claimer = settings.Nats.KvClaimer
            ? owned.Add(new NatsKvClaimer(side!, settings.Nats.Claimer with { WorkerId = engine.WorkerId }, logger))
            : null;
        // A stop ends pulling (the pipeline stops the source's fetching, ISupportsStopPulling):
        // what waits in the fetch buffer goes back to the pool now, then what has not started.
        var pipeline = new CommandPipeline<NatsHandle>(source, tools, sink, engine, claimer, logger: logger);
        await RunPipelineAsync(pipeline, () => false, stoppingToken).ConfigureAwait(false);
        if (state.SourceExhausted && !stoppingToken.IsCancellationRequested)
        {
            // An idle end: say what the consumer still holds (a dead worker's messages awaiting
            // their ack wait, another worker's), so a batch job is not told "all done" while work waits.
            state.ConsumerLeft = await ConsumerLeftAsync(source, consumer).ConfigureAwait(false);
        }
    }

    private async Task<NatsConsumerState?> ConsumerLeftAsync(NatsCommandSource source, NatsConnection connection)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            // This worker's last acks are not confirmed (fire-and-forget): a round trip puts them
            // ahead of the question, and a second look follows an answer that still counts some.
            await connection.PingAsync(bound.Token).ConfigureAwait(false);
            var left = await source.ReadConsumerStateAsync(bound.Token).ConfigureAwait(false);
            for (var look = 0; look < 2 && left.HoldsWork; look++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), bound.Token).ConfigureAwait(false);
                left = await source.ReadConsumerStateAsync(bound.Token).ConfigureAwait(false);
            }

            return left;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.ConsumerStateUnknown(_logger, ex.Message);
            return null;
        }
    }

    private async Task RunPipelineAsync<THandle>(CommandPipeline<THandle> pipeline, Func<bool> exhausted, CancellationToken stoppingToken)
    {
        state.Attach(pipeline);
        await pipeline.RunAsync(stoppingToken).ConfigureAwait(false);
        // Ended without a stop: the source ran out (a read file, an idle NATS source).
        var ranOut = !stoppingToken.IsCancellationRequested || exhausted();
        state.Ended(pipeline.DeadlineReached, ranOut);
        if (ranOut && !stoppingToken.IsCancellationRequested)
        {
            Log.Exhausted(_logger);
        }
    }

    private static NatsConnection Connect(NatsConnectionOptions connection, string role) =>
        new(connection.ToNatsOpts() with { Name = $"{connection.Name}-{role}" });

    /// <summary>
    /// Says on the log when the server cannot be reached (for 2 s: a blip is not news), every 10 s
    /// while it stays away, and when it is back: connected for the first time, or again. Polled:
    /// NATS.Net raises no event for a first connect that keeps failing, and a dead server at start
    /// is the case users meet first.
    /// </summary>
    private sealed class ConnectionWatch(NatsConnection connection, string url, ILogger logger)
    {
        private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);
        private static readonly TimeSpan Every = TimeSpan.FromSeconds(10);

        public async Task WatchAsync(CancellationToken stop)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
            var down = new Stopwatch();
            var said = TimeSpan.MinValue;
            var everOpen = false;
            try
            {
                while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
                {
                    if (connection.ConnectionState == NatsConnectionState.Open)
                    {
                        if (said != TimeSpan.MinValue)
                        {
                            // "Again" only for a connection that was open before: at start the worker never had one.
                            if (everOpen)
                            {
                                Log.NatsReconnected(logger, url, down.Elapsed.TotalSeconds);
                            }
                            else
                            {
                                Log.NatsConnected(logger, url, down.Elapsed.TotalSeconds);
                            }
                        }

                        everOpen = true;
                        down.Reset();
                        said = TimeSpan.MinValue;
                        continue;
                    }

                    down.Start();
                    if (said == TimeSpan.MinValue && down.Elapsed >= Quiet)
                    {
                        said = down.Elapsed;
                        Log.NatsDisconnected(logger, url, connection.ConnectionState.ToString().ToLowerInvariant());
                    }
                    else if (said != TimeSpan.MinValue && down.Elapsed - said >= Every)
                    {
                        said = down.Elapsed;
                        Log.NatsStillDown(logger, url, down.Elapsed.TotalSeconds);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // The run ended.
            }
        }
    }

    /// <summary>What the run opened, closed in reverse order when it ends (the sink's flush included).</summary>
    private sealed class Owned : IAsyncDisposable
    {
        private readonly Stack<object> _items = new();

        public T Add<T>(T item)
            where T : IAsyncDisposable
        {
            _items.Push(item);
            return item;
        }

        public T AddDisposable<T>(T item)
            where T : IDisposable
        {
            _items.Push(item);
            return item;
        }

        /// <summary>Disposes everything, newest first; one that throws does not keep the rest (a connection, a file) open. The first error is rethrown.</summary>
        public async ValueTask DisposeAsync()
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo? first = null;
            while (_items.TryPop(out var item))
            {
                try
                {
                    switch (item)
                    {
                        case IAsyncDisposable a: await a.DisposeAsync().ConfigureAwait(false); break;
                        case IDisposable d: d.Dispose(); break;
                    }
                }
                catch (Exception ex)
                {
                    first ??= System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
                }
            }

            first?.Throw();
        }
    }
}
