using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using Pipeline.Claiming;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Modules;
using Pipeline.Nats.Claiming;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Events;
using Pipeline.Nats.Sources;

namespace Pipeline.Nats.Modules;

/// <summary>
/// One run of the NATS module. It owns its connections: the consumer's, and a side one for claims
/// and event publishes, so a busy consumer's socket does not hold them up (nats-notes.md,
/// "Faults"). What it opened is closed newest first: the claimer (its heartbeat deleted, so what
/// it holds is free to the pool at once), the source, the consumer's connection, the sink, the
/// side connection.
/// </summary>
internal sealed class NatsModuleRun : IModuleRun
{
    private readonly ModuleSelection _selection;
    private readonly NatsWorkerOptions _options;
    private readonly PipelineOptions _engine;
    private readonly ModuleRunContext _context;
    private readonly ILogger _logger;
    private readonly RunResources _resources = new();
    private readonly NatsConnection? _side;

    public NatsModuleRun(ModuleSelection selection, NatsWorkerOptions options, PipelineOptions engine, ModuleRunContext context)
    {
        _selection = selection;
        _options = options;
        _engine = engine;
        _context = context;
        _logger = context.Loggers.CreateLogger("pipeline");
        if (selection.Any)
        {
            _side = _resources.Add(Connect(options.Connection!, "events"));
        }
    }

    public IEventSink CreateSink() =>
        _resources.AddDisposable(new NatsEventSink(_side ?? throw NotSelected("event sink"), _options.Events, _logger));

    // The stream sequence of each claimed delivery comes with the claim (NatsDelivery in its context).
    public IClaimer CreateClaimer() =>
        _resources.Add(new NatsKvClaimer(
            _side ?? throw NotSelected("claimer"),
            _options.Claimer with { WorkerId = _engine.WorkerId },
            _logger));

    public async Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken)
    {
        ArgumentNullException.ThrowIfNull(runner);
        if (_selection.Source is null)
        {
            throw NotSelected("source");
        }

        var connection = _options.Connection!;
        var consumer = _resources.Add(Connect(connection, "consumer"));
        // One connection reports the server's state; the other would say the same twice.
        using var watching = new CancellationTokenSource();
        var watch = new ConnectionWatch(consumer, connection.DisplayUrl, _context.Lifecycle).WatchAsync(watching.Token);
        try
        {
            return await ConsumeAsync(consumer, runner, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            await watching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _resources.DisposeAsync();

    private async Task<WorkLeft?> ConsumeAsync(NatsConnection consumer, IPipelineRunner runner, CancellationToken stoppingToken)
    {
        var connection = _options.Connection!;
        var settings = _options.Source;
        try
        {
            // Connected before the source exists, so a stop before the server is reached ends
            // here with nothing pulled. (The source's idle clock starts at its first fetch.)
            // With an idle timeout (a batch job) a server that cannot be reached within it is
            // an error, not a wait forever: nothing can arrive from it.
            var connecting = consumer.ConnectAsync().AsTask().WaitAsync(stoppingToken);
            if (settings.IdleTimeout is { } idle)
            {
                connecting = connecting.WaitAsync(idle, stoppingToken);
            }

            await connecting.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return null; // stopped before the server was reached: nothing was pulled
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"NATS at {connection.DisplayUrl} was not reached within the idle timeout ({settings.IdleTimeout!.Value.TotalSeconds:0.###} s); nothing was pulled.");
        }

        var source = _resources.Add(new NatsCommandSource(consumer, settings, logger: _logger));
        try
        {
            // Bound now, so a stream or consumer that bind-only cannot find is an error at
            // start (InvalidOperationException, naming them), not a warning a second while the
            // worker reports success.
            await source.InitializeAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex) when (ex is not InvalidOperationException)
        {
            // Anything else (a server restarting, a slow reply): the fetch loop binds again with backoff.
            NatsModuleLog.BindFailed(_context.Lifecycle, ex.Message);
        }

        // A stop ends pulling (the pipeline stops the source's fetching, ISupportsStopPulling):
        // what waits in the fetch buffer goes back to the pool now, then what has not started.
        var end = await runner.RunAsync(source).ConfigureAwait(false);
        // An idle end: say what the consumer still holds (a dead worker's messages awaiting their
        // ack wait, another worker's), so a batch job is not told "all done" while work waits.
        return end.EndedBySource && !stoppingToken.IsCancellationRequested ? await WorkLeftAsync(source, consumer).ConfigureAwait(false) : null;
    }

    private async Task<WorkLeft?> WorkLeftAsync(NatsCommandSource source, NatsConnection connection)
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

            return new WorkLeft("consumer", _options.Source.Consumer, left.AwaitingAck, (long)Math.Min(left.Pending, long.MaxValue / 2), left.Redelivered)
            {
                InProgressAs = "awaiting ack",
                WaitingAs = "pending",
                Hint = "run a worker again, or use --exit-when-drained",
            };
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            NatsModuleLog.ConsumerStateUnknown(_context.Lifecycle, ex.Message);
            return null;
        }
    }

    private static NatsConnection Connect(NatsConnectionOptions connection, string role) =>
        new(connection.ToNatsOpts() with { Name = $"{connection.Name}-{role}" });

    private InvalidOperationException NotSelected(string what) =>
        new($"The {NatsModule.Kind} module provides no {what} to this run ({_selection}).");
}
