using System.Collections.Concurrent;
using Pipeline.Commands;
using Pipeline.Sources;
using Pipeline.Telemetry;
using Polly;
using Polly.Retry;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Pull: a Dataflow block of <see cref="PipelineOptions.PullParallelism"/> pull loops. Each loop
/// takes a free delivery from the pool (the in-flight credit), calls <c>NextAsync</c> into it and
/// hands the item to Claim, while credits last. A delivery comes back only when its path is done,
/// so no more <c>NextAsync</c> calls are made than <see cref="PipelineOptions.MaxInFlight"/>
/// allows. A loop that finds no credit parks, and is posted back to the block once a refill's
/// worth of deliveries (1/16 of the bound, at most 64) is free again: one wake-up per refill,
/// not one per item.
/// </summary>
internal sealed class PullStage<THandle>
{
    public const string Name = "Pull";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly ClaimStage<THandle> _next;
    private readonly StageBlock<int> _block;
    private readonly ResiliencePipeline<Pulled<THandle>?> _retry;
    private readonly ConcurrentQueue<Delivery<THandle>> _free = new();
    private readonly int _refill;
    private int _freeCount;
    private int _parked;
    private volatile bool _closed;

    public PullStage(PipelineRuntime<THandle> runtime, ClaimStage<THandle> next)
    {
        _runtime = runtime;
        _next = next;
        _retry = BuildRetry(runtime);
        _refill = Math.Clamp(runtime.Options.MaxInFlight / 16, 1, 64);
        _block = new StageBlock<int>(PullLoopAsync, runtime.Options.PullParallelism);
        runtime.ReturnToPool = Return;
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    /// <summary>Starts the pull loops.</summary>
    public void Start()
    {
        for (var i = 0; i < _runtime.Options.PullParallelism; i++)
        {
            _block.Post(i);
        }
    }

    /// <summary>No more pulls (stop requested, source exhausted, or a fault): the block finishes what it started.</summary>
    public void Close()
    {
        _closed = true;
        _block.Complete();
    }

    private void Return(Delivery<THandle> delivery)
    {
        _free.Enqueue(delivery);
        var free = Interlocked.Increment(ref _freeCount);
        if (free >= _refill && Volatile.Read(ref _parked) > 0)
        {
            WakeOne();
        }
    }

    private async ValueTask PullLoopAsync(int loop)
    {
        while (!_closed && !_runtime.Stopping.IsCancellationRequested)
        {
            if (TakeFree() is not { } delivery)
            {
                // Park, then look again: a refill may have come between the miss and the count.
                Interlocked.Increment(ref _parked);
                if (Volatile.Read(ref _freeCount) >= _refill)
                {
                    WakeOne();
                }

                return;
            }

            await PullAsync(delivery).ConfigureAwait(false);
        }
    }

    private Delivery<THandle>? TakeFree()
    {
        if (_free.TryDequeue(out var delivery))
        {
            Interlocked.Decrement(ref _freeCount);
            return delivery;
        }

        return _runtime.TryCreateDelivery();
    }

    private void WakeOne()
    {
        int parked;
        do
        {
            parked = Volatile.Read(ref _parked);
            if (parked == 0)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref _parked, parked - 1, parked) != parked);

        // After Close the block declines, and the loop stays parked: nothing more is pulled.
        _block.Post(0);
    }

    private async ValueTask PullAsync(Delivery<THandle> delivery)
    {
        delivery.BeginPull();
        Pulled<THandle>? pulled;
        var stopping = _runtime.Stopping;
        try
        {
            try
            {
                // Straight to the source while it succeeds; Polly takes over from the first failure.
                pulled = await _runtime.Source.Source.NextAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (!stopping.IsCancellationRequested)
            {
                var replay = new ReplayFirstOutcome<ICommandSource<THandle>, bool, Pulled<THandle>?>(
                    _runtime.Source.Source, false, Outcome.FromException<Pulled<THandle>?>(ex), static (source, _, token) => source.NextAsync(token));
                pulled = await _retry.ExecuteAsync(static (state, token) => state.NextAsync(token), replay, stopping).ConfigureAwait(false);
            }
        }
        catch (Exception) when (stopping.IsCancellationRequested)
        {
            delivery.Reset();
            Return(delivery);
            return;
        }

        if (pulled is not { } item)
        {
            delivery.Reset();
            Return(delivery);
            Close(); // exhausted
            return;
        }

        var pulledAt = _runtime.Time.GetTimestamp();
        _runtime.Stats.MarkPulled(pulledAt);
        // Renewing before the delivery opens: the deadline sweep settles only open deliveries, and
        // a settle stops the renewals, so none can start after it.
        delivery.KeepAlive?.Start(item.Handle);
        delivery.Open(item, pulledAt);
        if (PipelineTelemetry.ActivitySource.HasListeners())
        {
            _runtime.StartSpan(delivery, item.Parent);
        }

        try
        {
            if (_runtime.Abort.IsCancellationRequested)
            {
                // Pulled by a source that ignored the stop, after the hard deadline: give it straight back.
                await _runtime.StrandAsync(delivery, Name).ConfigureAwait(false);
                return;
            }

            _next.Post(delivery);
        }
        catch (Exception ex)
        {
            await _runtime.InternalErrorAsync(delivery, ex, Name).ConfigureAwait(false);
        }
    }

    private static ResiliencePipeline<Pulled<THandle>?> BuildRetry(PipelineRuntime<THandle> runtime)
    {
        var backoff = runtime.Options.PullErrorBackoff;
        return new ResiliencePipelineBuilder<Pulled<THandle>?> { TimeProvider = runtime.Time }
            .AddRetry(new RetryStrategyOptions<Pulled<THandle>?>
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = backoff.Base,
                MaxDelay = backoff.Max,
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is { } && !runtime.Stopping.IsCancellationRequested),
                OnRetry = args =>
                {
                    runtime.Stats.Increment(StatCounter.PullErrors);
                    Log.PullFailed(runtime.Logger, args.Outcome.Exception!, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }
}
