using System.Collections.Concurrent;
using System.Threading.Channels;
using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>
/// Shared machinery of the embedded sources: a ready queue, redelivery on nack (with
/// <c>attempts + 1</c>), delayed nack, terminate to a dead-letter list, and exhaustion once input
/// is complete and no delivery is outstanding (a nacked item still comes back).
/// </summary>
public abstract class QueuedCommandSource :
    ICommandSource<DeliveryHandle>,
    ISupportsDelayedNack<DeliveryHandle>,
    ISupportsTerminate<DeliveryHandle>
{
    private readonly Channel<ClaimOutcome> _ready = Channel.CreateUnbounded<ClaimOutcome>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });

    private readonly ConcurrentQueue<DeadLetter> _deadLetters = new();

    private readonly object _gate = new();

    // Deliveries handed out and not settled, plus NextAsync reservations, plus delayed
    // redeliveries not yet back in the queue. Exhaustion needs it at zero. Raised under _gate.
    private long _outstanding;
    private long _nextDeliveryId;
    private long _acked;
    private long _nacked;
    private long _terminated;
    private volatile bool _inputComplete;

    /// <summary>Creates the source.</summary>
    /// <param name="timeProvider">Clock for delayed nacks; <see cref="TimeProvider.System"/> when null.</param>
    protected QueuedCommandSource(TimeProvider? timeProvider)
    {
        TimeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The clock delayed nacks run on.</summary>
    protected TimeProvider TimeProvider { get; }

    /// <summary>Acked deliveries.</summary>
    public long Acked => Volatile.Read(ref _acked);

    /// <summary>Nacked deliveries (each comes back).</summary>
    public long Nacked => Volatile.Read(ref _nacked);

    /// <summary>Terminated deliveries (see <see cref="DeadLetters"/>).</summary>
    public long Terminated => Volatile.Read(ref _terminated);

    /// <summary>Items ready to be pulled now.</summary>
    public int Ready => _ready.Reader.Count;

    /// <summary>How many dead letters <see cref="DeadLetters"/> keeps: the latest 1024.</summary>
    public const int MaxDeadLetters = 1024;

    /// <summary>
    /// The latest items given up on (at most <see cref="MaxDeadLetters"/>; <see cref="Terminated"/>
    /// counts them all), in the order they were terminated: a long run of poison input costs a
    /// bounded amount of memory.
    /// </summary>
    public IReadOnlyCollection<DeadLetter> DeadLetters => _deadLetters;

    /// <summary>Every item was read and settled for good: nothing is left to pull, now or after a redelivery.</summary>
    public bool Exhausted => _ready.Reader.Completion.IsCompleted;

    /// <summary>Whether no more new input will arrive.</summary>
    protected bool InputComplete => _inputComplete;

    /// <inheritdoc/>
    public async ValueTask<Pulled<DeliveryHandle>?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool produce;
            lock (_gate)
            {
                if (_ready.Reader.TryRead(out var outcome))
                {
                    Interlocked.Increment(ref _outstanding);
                    return Deliver(outcome);
                }

                // Reserve while producing, so the source cannot finish while this call may yet hand out an item.
                produce = !_inputComplete;
                if (produce)
                {
                    Interlocked.Increment(ref _outstanding);
                }
            }

            if (produce)
            {
                ClaimOutcome? produced = null;
                try
                {
                    produced = await ProduceAsync(cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    if (produced is null)
                    {
                        Release();
                    }
                }

                if (produced is { } fresh)
                {
                    return Deliver(fresh);
                }
            }

            if (!await _ready.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }
    }

    /// <inheritdoc/>
    public ValueTask AckAsync(DeliveryHandle handle, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _acked);
        Release();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask NackAsync(DeliveryHandle handle, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _nacked);
        Requeue(Redeliver(handle.Outcome));
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask NackAsync(DeliveryHandle handle, TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay <= TimeSpan.Zero)
        {
            return NackAsync(handle, cancellationToken);
        }

        Interlocked.Increment(ref _nacked);
        var redelivery = new DelayedRedelivery(this, Redeliver(handle.Outcome));
        redelivery.Start(delay);
        // The delivery stays outstanding until the timer puts the item back.
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask TerminateAsync(DeliveryHandle handle, string reason, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _terminated);
        _deadLetters.Enqueue(new DeadLetter(handle.Outcome, reason));
        while (_deadLetters.Count > MaxDeadLetters && _deadLetters.TryDequeue(out _))
        {
        }
        Release();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Produces the next fresh item when the ready queue is empty, or null when there is none
    /// right now. A source that reaches the end of its input calls <see cref="CompleteInput"/>.
    /// </summary>
    protected virtual ValueTask<ClaimOutcome?> ProduceAsync(CancellationToken cancellationToken) =>
        new((ClaimOutcome?)null);

    /// <summary>Adds an item to the ready queue.</summary>
    /// <exception cref="InvalidOperationException">The input is complete.</exception>
    protected void EnqueueReady(ClaimOutcome outcome)
    {
        lock (_gate)
        {
            if (_inputComplete || !_ready.Writer.TryWrite(outcome))
            {
                throw new InvalidOperationException("The source's input is complete; no more items can be added.");
            }
        }
    }

    /// <summary>No more new input: the source is exhausted once every delivery is settled.</summary>
    protected void CompleteInput()
    {
        lock (_gate)
        {
            _inputComplete = true;
            FinishIfDone();
        }
    }

    /// <summary>The outcome a nacked item comes back with: its command's <c>attempts</c> grows by one.</summary>
    protected virtual ClaimOutcome Redeliver(ClaimOutcome outcome)
    {
        if (outcome.Command is not { } command)
        {
            return outcome;
        }

        var next = command with { Attempts = command.Attempts + 1 };
        return outcome.Kind switch
        {
            ClaimOutcomeKind.Claimed => ClaimOutcome.Claimed(next),
            ClaimOutcomeKind.AlreadyClaimed => ClaimOutcome.AlreadyClaimed(next),
            ClaimOutcomeKind.RetryLater => ClaimOutcome.RetryLater(outcome.Reason!, next),
            _ => ClaimOutcome.Failed(outcome.Reason!, next),
        };
    }

    private Pulled<DeliveryHandle> Deliver(ClaimOutcome outcome) =>
        new(outcome, new DeliveryHandle(Interlocked.Increment(ref _nextDeliveryId), outcome));

    /// <summary>An outstanding delivery comes back to the ready queue (a nack, or a delayed nack's timer).</summary>
    private void Requeue(ClaimOutcome outcome)
    {
        lock (_gate)
        {
            // The queue closes only when nothing is outstanding, and this delivery still is: a
            // failed write means a delivery was settled twice, which must not pass silently.
            if (!_ready.Writer.TryWrite(outcome))
            {
                throw new InvalidOperationException("A delivery was settled after the source finished: was a handle settled twice?");
            }

            Interlocked.Decrement(ref _outstanding);
        }
    }

    private void Release()
    {
        // Outside the lock (acks are the hot path): only the settle that brings the count to zero
        // looks, under the lock, whether the source is finished.
        if (Interlocked.Decrement(ref _outstanding) == 0 && _inputComplete)
        {
            lock (_gate)
            {
                FinishIfDone();
            }
        }
    }

    // Under _gate: taking from the ready queue with its reservation, putting back, and finishing
    // are atomic with each other, so no call can see the queue empty and nothing outstanding
    // while an item is between the two. Acks only decrement; the one reaching zero looks here.
    private void FinishIfDone()
    {
        if (_inputComplete && Volatile.Read(ref _outstanding) == 0 && _ready.Reader.Count == 0)
        {
            _ready.Writer.TryComplete();
        }
    }

    private sealed class DelayedRedelivery(QueuedCommandSource owner, ClaimOutcome outcome)
    {
        private ITimer? _timer;

        public void Start(TimeSpan delay)
        {
            lock (this)
            {
                _timer = owner.TimeProvider.CreateTimer(static state => ((DelayedRedelivery)state!).Fire(), this, delay, Timeout.InfiniteTimeSpan);
            }
        }

        private void Fire()
        {
            lock (this)
            {
                _timer?.Dispose();
            }

            owner.Requeue(outcome);
        }
    }
}
