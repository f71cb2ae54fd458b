using System.Collections.Concurrent;
using Pipeline.Events;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Pipeline.Engine.Stages;

/// <summary>One hand-over to Emit: a delivery's events <see cref="From"/> up to <see cref="To"/>.</summary>
internal readonly record struct EmitRequest<THandle>(Delivery<THandle> Delivery, int From, int To);

/// <summary>
/// Emit: copies each delivery's events into a batch, frees the delivery, and writes the batch to
/// the sink when it is full or nothing more is queued. Settles never wait for this block: every
/// delivery reaching it is settled already (or still running, for the early events of a slow
/// tool). While the sink is slow or failing, deliveries wait here holding their in-flight slots,
/// which slows pulling (<see cref="SinkFailureAction.Backpressure"/>), or batches are dropped and
/// counted (<see cref="SinkFailureAction.Drop"/>).
/// </summary>
internal sealed class EmitStage<THandle>
{
    public const string Name = "Emit";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly IEventSink _sink;
    private readonly StageBlock<EmitRequest<THandle>> _block;
    private readonly ResiliencePipeline _resilience;
    private readonly CircuitBreakerStateProvider _breaker = new();
    private readonly int _batchSize;

    // The batch being filled, shared by the Emit calls under _gate (a block keeps no per-worker
    // state), and the spare batches the writes give back: at most one per concurrent write.
    private readonly object _gate = new();
    private readonly ConcurrentQueue<EventBatch> _spare = new();

    // Every batch made (a handful: one per concurrent write, plus the one being filled), so the
    // end of a run can find the writes a sink never returned from.
    private readonly ConcurrentQueue<EventBatch> _all = new();
    private EventBatch _current;
    private int _queued;
    private int _closedReported;

    public EmitStage(PipelineRuntime<THandle> runtime, IEventSink sink)
    {
        _runtime = runtime;
        _sink = sink;
        _batchSize = runtime.Options.EmitBatchSize;
        _resilience = BuildResilience(runtime, _breaker);
        _current = NewBatch();

        _block = new StageBlock<EmitRequest<THandle>>(EmitAsync, runtime.Options.Emit.Parallelism);
        runtime.Finish = PostFinal;
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    public void Complete() => _block.Complete();

    /// <summary>A tool went asynchronous: its first events go now; the delivery is freed after its final request.</summary>
    public void PostEarly(Delivery<THandle> delivery)
    {
        if (delivery.EventsPosted != 0 || delivery.EventCount == 0)
        {
            return;
        }

        delivery.ExpectEmits(2);
        var count = delivery.EventCount;
        delivery.EventsPosted = count;
        Post(new EmitRequest<THandle>(delivery, 0, count));
    }

    /// <summary>The delivery's path is done: its remaining events go, and then it is freed.</summary>
    public void PostFinal(Delivery<THandle> delivery)
    {
        if (delivery.EventsPosted == 0)
        {
            delivery.ExpectEmits(1);
        }

        delivery.EndSpan(); // the item's path is done: the span does not wait for the sink
        var from = delivery.EventsPosted;
        delivery.EventsPosted = delivery.EventCount;
        delivery.Position = DeliveryPosition.EmitQueued;
        Post(new EmitRequest<THandle>(delivery, from, delivery.EventCount));
    }

    private void Post(EmitRequest<THandle> request)
    {
        Interlocked.Increment(ref _queued);
        if (!_block.Post(request))
        {
            Interlocked.Decrement(ref _queued);
            _runtime.Stats.Add(StatCounter.EventsDropped, request.To - request.From);
            if (request.Delivery.EmitDone())
            {
                _ = _runtime.StrandAsync(request.Delivery, Name).AsTask();
            }
        }
    }

    private ValueTask EmitAsync(EmitRequest<THandle> request)
    {
        var delivery = request.Delivery;
        if (delivery.Position == DeliveryPosition.EmitQueued)
        {
            delivery.Position = DeliveryPosition.Emitting; // its final request (an early one leaves it in Dispatch)
        }

        EventBatch? full = null;
        try
        {
            lock (_gate)
            {
                _current.Add(delivery.Events[request.From..request.To]);
                // Whoever empties the queue, or fills the batch, takes it to the sink: no event waits
                // in a batch while Emit is idle, whatever the parallelism.
                if (Interlocked.Decrement(ref _queued) == 0 || _current.Count >= _batchSize)
                {
                    full = _current;
                    _current = _spare.TryDequeue(out var spare) ? spare : NewBatch();
                }
            }
        }
        finally
        {
            if (delivery.EmitDone())
            {
                _runtime.Release(delivery);
            }
        }

        return full is null ? ValueTask.CompletedTask : WriteAndReturnAsync(full);
    }

    /// <summary>
    /// The run is ending (its settle budget spent) with writes still in the sink: a sink that
    /// ignores its token. Their events are counted as dropped now, so emitted + dropped add up when
    /// <c>RunAsync</c> returns; a write that ends later is not counted again.
    /// </summary>
    public void AbandonPendingWrites()
    {
        foreach (var batch in _all)
        {
            if (batch.TryEndWrite() is { } count)
            {
                _runtime.Stats.Add(StatCounter.EventsDropped, count);
                Log.EventsDropped(_runtime.Logger, null, count);
            }
        }
    }

    private EventBatch NewBatch()
    {
        var batch = new EventBatch(_batchSize + Delivery<THandle>.MaxEvents);
        _all.Enqueue(batch);
        return batch;
    }

    private async ValueTask WriteAndReturnAsync(EventBatch batch)
    {
        _runtime.SinkWriteBegun();
        try
        {
            await WriteAsync(batch).ConfigureAwait(false);
        }
        finally
        {
            _runtime.SinkWriteEnded();
            _spare.Enqueue(batch);
        }
    }

    private async ValueTask WriteAsync(EventBatch batch)
    {
        var events = batch.Memory;
        batch.BeginWrite();
        try
        {
            var direct = _breaker.CircuitState is CircuitState.Closed;
            Exception? first = null;
            if (direct)
            {
                try
                {
                    // Straight to the sink while it succeeds; Polly takes over from the first failure.
                    await _sink.WriteAsync(events, _runtime.SinkDeadline).ConfigureAwait(false);
                }
                catch (Exception ex) when (!_runtime.Abort.IsCancellationRequested)
                {
                    first = ex;
                }
            }

            if (!direct || first is not null)
            {
                // The first attempt Polly makes replays the failed direct call (or, with the breaker
                // open or probing, makes the call through the breaker).
                var replay = new ReplayFirstOutcome<IEventSink, ReadOnlyMemory<PipelineEvent>, bool>(
                    _sink, events, first is null ? null : Outcome.FromException<bool>(first), static async (sink, batch, token) =>
                    {
                        await sink.WriteAsync(batch, token).ConfigureAwait(false);
                        return true;
                    });
                await _resilience.ExecuteAsync(static async (state, token) => await state.NextAsync(token).ConfigureAwait(false), replay, _runtime.Abort).ConfigureAwait(false);
            }

            if (batch.TryEndWrite() is not null)
            {
                _runtime.Stats.Add(StatCounter.EventsEmitted, events.Length);
            }
        }
        catch (Exception ex)
        {
            if (batch.TryEndWrite() is null)
            {
                return; // counted as dropped when the run ended without it
            }

            // Events are freshness, never the truth: count what was lost and go on.
            _runtime.Stats.Add(StatCounter.EventsDropped, events.Length);
            // A closed sink is reported once: every later batch would say the same (the counter has them all).
            if (ex is not EventSinkClosedException || Interlocked.Exchange(ref _closedReported, 1) == 0)
            {
                Log.EventsDropped(_runtime.Logger, ex is BrokenCircuitException ? null : ex, events.Length);
            }
        }
        finally
        {
            batch.Clear();
        }
    }

    private static ResiliencePipeline BuildResilience(PipelineRuntime<THandle> runtime, CircuitBreakerStateProvider breaker)
    {
        var options = runtime.Options;
        var backoff = options.EmitRetryBackoff;
        var builder = new ResiliencePipelineBuilder { TimeProvider = runtime.Time };
        var retry = new RetryStrategyOptions
        {
            BackoffType = DelayBackoffType.Exponential,
            Delay = backoff.Base,
            MaxDelay = backoff.Max,
            UseJitter = true,
            OnRetry = args =>
            {
                Log.SinkRetrying(runtime.Logger, args.Outcome.Exception, args.RetryDelay);
                return ValueTask.CompletedTask;
            },
        };

        if (options.SinkFailure == SinkFailureAction.Backpressure)
        {
            // Until the sink takes the batch or the deadline cancels: deliveries wait, pulling slows.
            retry.MaxRetryAttempts = int.MaxValue;
            retry.ShouldHandle = args => new ValueTask<bool>(
                args.Outcome.Exception is { } ex and not EventSinkClosedException && !runtime.Abort.IsCancellationRequested);
            return builder.AddRetry(retry).Build();
        }

        // Drop: a few retries per batch, and while the sink keeps failing the breaker drops at once.
        if (options.EmitRetries > 0)
        {
            retry.MaxRetryAttempts = options.EmitRetries;
            retry.ShouldHandle = args => new ValueTask<bool>(
                args.Outcome.Exception is { } ex and not (BrokenCircuitException or EventSinkClosedException) && !runtime.Abort.IsCancellationRequested);
            builder.AddRetry(retry);
        }

        return builder
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = 1.0,
                MinimumThroughput = options.EmitRetries + 2,
                SamplingDuration = TimeSpan.FromSeconds(30),
                // Polly's breaker takes 0.5 s to a day.
                BreakDuration = TimeSpan.FromTicks(Math.Clamp(backoff.Max.Ticks, TimeSpan.FromMilliseconds(500).Ticks, TimeSpan.FromDays(1).Ticks)),
                StateProvider = breaker,
            })
            .Build();
    }
}

/// <summary>One Emit call's batch of events, reused between writes.</summary>
internal sealed class EventBatch(int capacity)
{
    private PipelineEvent[] _events = new PipelineEvent[capacity];

    private int _writing;

    public int Count { get; private set; }

    public ReadOnlyMemory<PipelineEvent> Memory => _events.AsMemory(0, Count);

    public void Add(ReadOnlySpan<PipelineEvent> events)
    {
        if (Count + events.Length > _events.Length)
        {
            Array.Resize(ref _events, Math.Max(_events.Length * 2, Count + events.Length));
        }

        events.CopyTo(_events.AsSpan(Count));
        Count += events.Length;
    }

    /// <summary>A write of this batch begins.</summary>
    public void BeginWrite() => Volatile.Write(ref _writing, Count + 1);

    /// <summary>Ends the write once, for whoever comes first (its end, or the end of the run): the events it held; null when already ended.</summary>
    public int? TryEndWrite()
    {
        var writing = Interlocked.Exchange(ref _writing, 0);
        return writing == 0 ? null : writing - 1;
    }

    /// <summary>Empties the batch, dropping its references so it keeps no results or strings alive.</summary>
    public void Clear()
    {
        _events.AsSpan(0, Count).Clear();
        Count = 0;
    }
}
