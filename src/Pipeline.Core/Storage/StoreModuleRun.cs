using System.Globalization;
using Microsoft.Extensions.Logging;
using Pipeline.Claiming;
using Pipeline.Events;
using Pipeline.Modules;
using Polly;
using Polly.Retry;

namespace Pipeline.Storage;

/// <summary>
/// One run of a store module: opens the store (retrying what may pass, such as a server still
/// starting), runs <see cref="StoreCommandSource"/> over it through the host's runner, and closes
/// the source, then the store. A store that failed for good (the source's <see cref="StoreCommandSource.Fault"/>,
/// or an open that cannot succeed) fails the run with one <see cref="ModuleRunException"/>.
/// </summary>
internal sealed class StoreModuleRun : IModuleRun
{
    private readonly Backend _backend;
    private readonly ModuleSelection _selection;
    private readonly StoreSourceOptions _options;
    private readonly ModuleRunContext _context;
    private readonly RunResources _resources = new();

    public StoreModuleRun(Backend backend, ModuleSelection selection, StoreSourceOptions options, ModuleRunContext context)
    {
        _backend = backend;
        _selection = selection;
        _options = options;
        _context = context;
    }

    public IEventSink CreateSink() => throw new InvalidOperationException($"The {_backend.Kind} module offers no event sink.");

    public IClaimer CreateClaimer() => throw new InvalidOperationException($"The {_backend.Kind} module offers no claimer.");

    public async Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken)
    {
        ArgumentNullException.ThrowIfNull(runner);
        if (_selection.Source is null)
        {
            throw new InvalidOperationException($"The {_backend.Kind} module provides no source to this run ({_selection}).");
        }

        IQueuedWorkStore store;
        try
        {
            store = await OpenAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return null; // stopped before the store was opened: nothing was claimed
        }

        _resources.Add(store);
        var source = _resources.Add(new StoreCommandSource(store, _options, _backend.System, _context.Loggers.CreateLogger("pipeline")));
        var end = await runner.RunAsync(source).ConfigureAwait(false);
        if (source.Fault is { } fault)
        {
            // What it had claimed stays in the store: its leases lapse and a worker started again takes it.
            throw new ModuleRunException(
                $"{_backend.Explain(fault)} The worker stopped; what it had claimed and not settled stays in the store and is claimed again once its lease lapses.",
                fault);
        }

        return end.EndedBySource && !stoppingToken.IsCancellationRequested ? await WorkLeftAsync(store).ConfigureAwait(false) : null;
    }

    public ValueTask DisposeAsync() => _resources.DisposeAsync();

    // A store that is not there yet (a server starting) is retried with backoff, as a worker on a
    // queue waits for its server; with an idle end asked for (a batch job) only within that time.
    private async Task<IQueuedWorkStore> OpenAsync(CancellationToken stoppingToken)
    {
        var retry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(250),
                MaxDelay = TimeSpan.FromSeconds(5),
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is { } ex && _backend.IsTransient(ex)),
                OnRetry = args =>
                {
                    StoreLog.OpenRetrying(_context.Lifecycle, _backend.Name, _backend.Where, args.Outcome.Exception!.Message, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        if (_options.IdleTimeout is { } idle)
        {
            bound.CancelAfter(idle);
        }

        try
        {
            return await retry.ExecuteAsync(static async (open, ct) => await open(ct).ConfigureAwait(false), _backend.Open, bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException ex)
        {
            throw new ModuleRunException($"The {_backend.Name} store {_backend.Where} could not be opened within the idle timeout ({_options.IdleTimeout!.Value.TotalSeconds:0.###} s); nothing was claimed.", ex);
        }
        catch (Exception ex)
        {
            throw new ModuleRunException($"{_backend.Explain(ex)} Nothing was claimed.", ex);
        }
    }

    // At an idle end the source saw nothing pending and no claim but its own; asked again here, after
    // this worker's last settles, so a batch job is told of work another worker took meanwhile.
    private async Task<WorkLeft?> WorkLeftAsync(IQueuedWorkStore store)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            var summary = await store.SummarizeAsync(0, bound.Token).ConfigureAwait(false);
            return new WorkLeft("store", _backend.Where, summary.Claimed, summary.Pending, Redelivered: 0)
            {
                InProgressAs = "claimed by other workers",
                WaitingAs = "pending",
                // A store has no --exit-when-drained: a worker's idle end already waits while the store
                // holds work, and a dead worker's claims come back to it once their leases lapse.
                Hint = string.Create(CultureInfo.InvariantCulture, $"run a worker again (it finishes what is pending, and takes over a stopped worker's claims once their leases lapse, {_options.LeaseTimeToLive.TotalSeconds:0.###} s)"),
            };
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            StoreLog.SummaryUnknown(_context.Lifecycle, _backend.Name, ex.Message);
            return null;
        }
    }

    /// <summary>What the run needs of its module, as plain values and functions.</summary>
    /// <param name="Kind">The source kind (<c>sqlite</c>).</param>
    /// <param name="Name">The store's name in messages (<c>SQLite</c>).</param>
    /// <param name="System">The store's name for telemetry (<c>sqlite</c>).</param>
    /// <param name="Where">The store's address, safe to print.</param>
    /// <param name="Open">Opens the store.</param>
    /// <param name="IsTransient">Whether an open that failed so may pass when tried again.</param>
    /// <param name="Explain">A failure as one line, without secrets.</param>
    internal sealed record Backend(
        string Kind,
        string Name,
        string System,
        string Where,
        Func<CancellationToken, Task<IQueuedWorkStore>> Open,
        Func<Exception, bool> IsTransient,
        Func<Exception, string> Explain);
}
