using System.Threading.Tasks.Dataflow;
using Pipeline.Commands;
using Pipeline.Sources;
using Polly;
using Polly.Retry;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Pull: a Dataflow block whose input is the pool of free deliveries. Each message is one credit
/// (a delivery, or null for one not made yet); the delegate calls <c>NextAsync</c> into it and
/// hands the item to Claim. A delivery comes back only when its path is done, so no more
/// <c>NextAsync</c> calls are made than <see cref="PipelineOptions.MaxInFlight"/> allows.
/// </summary>
internal sealed class PullStage<THandle>
{
    public const string Name = "Pull";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly ClaimStage<THandle> _next;
    private readonly ActionBlock<Delivery<THandle>?> _block;
    private readonly ResiliencePipeline<Pulled<THandle>?> _retry;
    private volatile bool _closed;

    public PullStage(PipelineRuntime<THandle> runtime, ClaimStage<THandle> next)
    {
        _runtime = runtime;
        _next = next;
        _retry = BuildRetry(runtime);
        _block = new ActionBlock<Delivery<THandle>?>(PullAsync, PipelineRuntime<THandle>.BlockOptions(runtime.Options.PullParallelism));
        runtime.ReturnToPool = Return;
    }

    public Task Completion => _block.Completion;

    /// <summary>Offers every in-flight credit.</summary>
    public void Start()
    {
        for (var i = 0; i < _runtime.Options.MaxInFlight; i++)
        {
            _block.Post(null);
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
        // After Close the credit is not needed; the delivery stays free in the pool.
        if (!_closed)
        {
            _block.Post(delivery);
        }
    }

    private async Task PullAsync(Delivery<THandle>? delivery)
    {
        if (_closed)
        {
            return;
        }

        delivery ??= _runtime.CreateDelivery();
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
            return;
        }

        if (pulled is not { } item)
        {
            delivery.Reset();
            Close(); // exhausted
            return;
        }

        _runtime.Stats.Increment(StatCounter.Pulled);
        delivery.Open(item, _runtime.Time.GetTimestamp());
        try
        {
            delivery.KeepAlive?.Start(item.Handle);
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
