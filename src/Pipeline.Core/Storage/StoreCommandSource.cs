using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Commands;
using Pipeline.Sources;
using Polly;
using Polly.Retry;

namespace Pipeline.Storage;

/// <summary>
/// A queued-work store (<see cref="IQueuedWorkStore"/>) as a pipeline source. Concurrent
/// <see cref="NextAsync"/> calls share one claim loop that claims many sessions in one round trip
/// while callers wait and nothing is buffered; settles from all handles are written together
/// (<see cref="SettleWriter"/>: one transaction for many) and each returns once durable.
/// </summary>
/// <remarks>
/// <para>Ack completes the batch, nack abandons it (ready again at once, or after the delay of a
/// delayed nack), terminate dead-letters it with the reason, keep-alive renews its lease. A settle
/// the store fences out (the lease lapsed and another worker re-claimed the batch) changes nothing
/// and is counted in <see cref="FencedOut"/>, never thrown: the other worker owns it now.</para>
/// <para>A store that cannot be reached is retried with backoff (Polly); an error the store calls
/// permanent (<see cref="IQueuedWorkStore.IsTransient"/>: a read-only file, a full disk) ends the
/// source: <see cref="NextAsync"/> returns null and <see cref="Fault"/> holds the error.</para>
/// </remarks>
public sealed class StoreCommandSource :
    ICommandSource<StoreHandle>,
    ISupportsDelayedNack<StoreHandle>,
    ISupportsTerminate<StoreHandle>,
    ISupportsKeepAlive<StoreHandle>,
    ISupportsDeliveryInfo<StoreHandle>,
    ISupportsTelemetry<StoreHandle>,
    ISupportsStopPulling,
    ISupportsSettleTimeout,
    IAsyncDisposable
{
    private readonly IQueuedWorkStore _store;
    private readonly StoreSourceOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly LeaseRequest _lease;
    private readonly SettleWriter _settles;
    private readonly ResiliencePipeline _retry;
    private readonly Channel<StoreHandle> _ready = Channel.CreateUnbounded<StoreHandle>(new() { SingleWriter = true });
    private readonly Channel<bool> _demand = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();

    // Claims the loop delivered after stop had closed the buffer (a claim that committed as stop began);
    // written only by the loop, read by stop once the loop has ended.
    private readonly List<StoreHandle> _claimedAfterStop = [];
    private Task? _claimLoop;
    private Task? _stopped;
    private int _waiting;
    private long _open;
    private long _claimed;
    private long _renewals;
    private long _leasesLost;
    private long _lapsedBeforeStart;
    private long _storeErrors;

    /// <summary>Creates the source; nothing is claimed until the first <see cref="NextAsync"/>.</summary>
    /// <param name="store">The store, opened; the caller disposes it after this source.</param>
    /// <param name="options">Settings; defaults when null. Validated here.</param>
    /// <param name="system">The store's name for telemetry and messages (<c>sqlite</c>, <c>postgresql</c>).</param>
    /// <param name="logger">Diagnostics.</param>
    /// <param name="timeProvider">The worker's clock (backoff, idle, when a buffered lease needs renewing); the system clock when null.</param>
    public StoreCommandSource(IQueuedWorkStore store, StoreSourceOptions? options = null, string system = "store", ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _options = options ?? new StoreSourceOptions();
        _options.Validate();
        MessagingSystem = system;
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _lease = new LeaseRequest { Owner = _options.Owner, TimeToLive = _options.LeaseTimeToLive };
        _retry = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(5),
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is { } ex && _store.IsTransient(ex)),
                OnRetry = args =>
                {
                    Interlocked.Increment(ref _storeErrors);
                    StoreLog.Unreachable(_logger, MessagingSystem, args.Outcome.Exception!.Message, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        _settles = new SettleWriter(_store, _retry, _options.SettleBatch, _options.SettleTimeout, _time, _logger);
    }

    /// <summary>The options in use.</summary>
    public StoreSourceOptions Options => _options;

    /// <inheritdoc/>
    public TimeSpan KeepAliveInterval => _options.EffectiveKeepAliveInterval;

    /// <summary>
    /// Each settle ends (written, fenced out, or failed) within <see cref="StoreSourceOptions.SettleTimeout"/>
    /// of its call, however long the store stays unreachable: the engine waits that long for it
    /// rather than its own, shorter settle timeout.
    /// </summary>
    public TimeSpan SettleTimeout => _options.SettleTimeout;

    /// <summary>The error that ended the source (the store refused for good), or null.</summary>
    public Exception? Fault { get; private set; }

    /// <summary>Batches claimed.</summary>
    public long Claimed => Interlocked.Read(ref _claimed);

    /// <summary>Completed by an ack.</summary>
    public long Acked => _settles.Counts.Completed;

    /// <summary>Abandoned by a nack (including a stop's hand-back).</summary>
    public long Nacked => _settles.Counts.Abandoned;

    /// <summary>Dead-lettered by a terminate.</summary>
    public long Terminated => _settles.Counts.DeadLettered;

    /// <summary>Settles the store refused because the batch is no longer held under its fence (another worker re-claimed it).</summary>
    public long FencedOut => _settles.Counts.FencedOut;

    /// <summary>Lease renewals that reached the store.</summary>
    public long Renewals => Interlocked.Read(ref _renewals);

    /// <summary>Renewals that found the claim gone (its lease lapsed and it was re-claimed, or cancelled).</summary>
    public long LeasesLost => Interlocked.Read(ref _leasesLost);

    /// <summary>Claimed batches whose lease was found gone before they were handed out; never pulled, so never settled.</summary>
    public long LapsedBeforeStart => Interlocked.Read(ref _lapsedBeforeStart);

    /// <summary>Store calls that failed and were retried.</summary>
    public long StoreErrors => Interlocked.Read(ref _storeErrors);

    /// <summary>Claimed and not yet settled: handed out or waiting to be.</summary>
    public long Held => Interlocked.Read(ref _open) + _ready.Reader.Count;

    /// <inheritdoc/>
    public string MessagingSystem { get; }

    /// <inheritdoc/>
    public string? DestinationName => "queued_work";

    /// <inheritdoc/>
    public string? ConsumerGroupName => null;

    /// <inheritdoc/>
    public string? MessageIdOf(StoreHandle handle) => handle.Batch.BatchId;

    /// <inheritdoc/>
    public object? DeliveryOf(StoreHandle handle) => new StoreDelivery(
        handle.Batch.SessionId,
        handle.Batch.BatchId,
        handle.Batch.Sequence,
        handle.Batch.Attempts,
        new ClaimLease(_options.Owner, handle.Fence, handle.Batch.Lease?.ExpiresAt ?? default));

    /// <inheritdoc/>
    public async ValueTask<Pulled<StoreHandle>?> NextAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        EnsureClaiming();
        while (true)
        {
            if (!_ready.Reader.TryRead(out var handle))
            {
                Interlocked.Increment(ref _waiting);
                try
                {
                    _demand.Writer.TryWrite(true);
                    if (!await _ready.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        return null;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref _waiting);
                }

                continue;
            }

            if (await StillHeldAsync(handle, cancellationToken).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _open);
                return new Pulled<StoreHandle>(Decode(handle.Batch), handle);
            }
        }
    }

    /// <inheritdoc/>
    public ValueTask AckAsync(StoreHandle handle, CancellationToken cancellationToken) =>
        SettleAsync(BatchSettlement.Complete(handle.Batch.BatchId, handle.Fence), cancellationToken);

    /// <inheritdoc/>
    public ValueTask NackAsync(StoreHandle handle, CancellationToken cancellationToken) =>
        SettleAsync(BatchSettlement.Abandon(handle.Batch.BatchId, handle.Fence), cancellationToken);

    /// <inheritdoc/>
    public ValueTask NackAsync(StoreHandle handle, TimeSpan delay, CancellationToken cancellationToken) =>
        SettleAsync(BatchSettlement.Abandon(handle.Batch.BatchId, handle.Fence, delay < TimeSpan.Zero ? TimeSpan.Zero : delay), cancellationToken);

    /// <inheritdoc/>
    public ValueTask TerminateAsync(StoreHandle handle, string reason, CancellationToken cancellationToken) =>
        SettleAsync(BatchSettlement.DeadLetter(handle.Batch.BatchId, handle.Fence, reason), cancellationToken);

    /// <inheritdoc/>
    public async ValueTask KeepAliveAsync(StoreHandle handle, CancellationToken cancellationToken)
    {
        var renewedAt = _time.GetTimestamp();
        var expiry = await _store.RenewAsync(handle.Fence, _options.LeaseTimeToLive, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _renewals);
        if (expiry is null)
        {
            // Re-claimed by another worker after a lapse: its settle will be fenced out. Said once per handle.
            Interlocked.Increment(ref _leasesLost);
            StoreLog.LeaseLost(_logger, handle.Batch.BatchId, handle.Fence);
            return;
        }

        handle.ClaimedAt = renewedAt;
    }

    /// <inheritdoc/>
    public Task StopPullingAsync()
    {
        lock (_gate)
        {
            return _stopped ??= StopCoreAsync();
        }
    }

    /// <summary>Stops claiming, hands back what was claimed and not handed out, and writes the settles still queued.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopPullingAsync().ConfigureAwait(false);
        }
        finally
        {
            await _settles.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
        }
    }

    private async ValueTask SettleAsync(BatchSettlement settlement, CancellationToken cancellationToken)
    {
        try
        {
            await _settles.WriteAsync(settlement, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    private void EnsureClaiming()
    {
        if (Volatile.Read(ref _claimLoop) is null)
        {
            lock (_gate)
            {
                if (_claimLoop is null && _stopped is null)
                {
                    _claimLoop = Task.Run(ClaimLoopAsync);
                }
            }
        }
    }

    private async Task ClaimLoopAsync()
    {
        var stopping = _stop.Token;
        var wait = TimeSpan.FromMilliseconds(1);
        long? emptySince = null;
        long? askedStoreAt = null;
        try
        {
            while (await _demand.Reader.WaitToReadAsync(stopping).ConfigureAwait(false))
            {
                _demand.Reader.TryRead(out _);
                while (Volatile.Read(ref _waiting) > 0 && _ready.Reader.Count == 0 && !stopping.IsCancellationRequested)
                {
                    var claims = await _retry.ExecuteAsync(
                        static (state, ct) => state._store.ClaimReadyAsync(state._lease, state._options.ClaimSessions, state._options.BatchesPerSession, ct),
                        this,
                        stopping).ConfigureAwait(false);
                    if (claims.Count > 0)
                    {
                        Deliver(claims);
                        wait = TimeSpan.FromMilliseconds(1);
                        emptySince = null;
                        askedStoreAt = null;
                        continue;
                    }

                    var now = _time.GetTimestamp();
                    emptySince ??= now;
                    if (_options.IdleTimeout is { } idle && _time.GetElapsedTime(emptySince.Value, now) >= idle
                        && (askedStoreAt is null || _time.GetElapsedTime(askedStoreAt.Value, now) >= idle))
                    {
                        askedStoreAt = now;
                        if (await NothingLeftAsync(stopping).ConfigureAwait(false))
                        {
                            StoreLog.Idle(_logger, MessagingSystem, idle);
                            return;
                        }
                    }

                    await Task.Delay(wait, _time, stopping).ConfigureAwait(false);
                    wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, _options.PollInterval.Ticks));
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Fault = ex;
            StoreLog.Failed(_logger, MessagingSystem, ex);
        }
        finally
        {
            _ready.Writer.TryComplete();
        }
    }

    // Idle ends the source only when the store holds nothing more to do: nothing pending (a
    // delayed nack's batch included) and no claim but this worker's own open ones (a dead
    // worker's claims come back when their leases lapse, and this worker is the one to finish them).
    private async Task<bool> NothingLeftAsync(CancellationToken cancellationToken)
    {
        var summary = await _retry.ExecuteAsync(static (store, ct) => store.SummarizeAsync(0, ct), _store, cancellationToken).ConfigureAwait(false);
        return summary.Pending == 0 && summary.Claimed <= Interlocked.Read(ref _open);
    }

    private void Deliver(IReadOnlyList<QueuedWorkClaim> claims)
    {
        var claimedAt = _time.GetTimestamp();
        foreach (var claim in claims)
        {
            foreach (var batch in claim.Batches)
            {
                Interlocked.Increment(ref _claimed);
                var handle = new StoreHandle(batch, claim.Fence, claimedAt);
                if (!_ready.Writer.TryWrite(handle))
                {
                    _claimedAfterStop.Add(handle);
                }
            }
        }
    }

    // A claimed batch can wait in the buffer while the pipeline is full; its lease is renewed before
    // it is handed out once a keep-alive interval has passed, so the pipeline never starts a command
    // whose lease another worker may already have taken over.
    private async ValueTask<bool> StillHeldAsync(StoreHandle handle, CancellationToken cancellationToken)
    {
        if (_time.GetElapsedTime(handle.ClaimedAt) < _options.EffectiveKeepAliveInterval)
        {
            return true;
        }

        var renewedAt = _time.GetTimestamp();
        DateTimeOffset? expiry;
        try
        {
            expiry = await _retry.ExecuteAsync(
                static (state, ct) => state.Store.RenewAsync(state.Fence, state.Ttl, ct),
                (Store: _store, handle.Fence, Ttl: _options.LeaseTimeToLive),
                cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up on this pull: the batch goes back, never lost.
            await _settles.WriteAsync(BatchSettlement.Abandon(handle.Batch.BatchId, handle.Fence), CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        Interlocked.Increment(ref _renewals);
        if (expiry is null)
        {
            Interlocked.Increment(ref _lapsedBeforeStart);
            StoreLog.LapsedBeforeStart(_logger, handle.Batch.BatchId, handle.Fence);
            return false;
        }

        handle.ClaimedAt = renewedAt;
        return true;
    }

    private static ClaimOutcome Decode(QueuedBatch batch)
    {
        try
        {
            var command = Command.Parse(batch.Payload.Span);
            return ClaimOutcome.Claimed(batch.Attempts == 0 ? command : command with { Attempts = command.Attempts + batch.Attempts });
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return ClaimOutcome.Failed($"batch {batch.BatchId} (session {batch.SessionId}, sequence {batch.Sequence}) is not a command: {ex.Message}");
        }
    }

    private async Task StopCoreAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _ready.Writer.TryComplete();
        if (_claimLoop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        // Claimed but never handed out: back to the store at once, for this or another worker.
        var handBack = new List<Task>();
        while (_ready.Reader.TryRead(out var handle))
        {
            handBack.Add(_settles.WriteAsync(BatchSettlement.Abandon(handle.Batch.BatchId, handle.Fence), CancellationToken.None).AsTask());
        }

        foreach (var handle in _claimedAfterStop)
        {
            handBack.Add(_settles.WriteAsync(BatchSettlement.Abandon(handle.Batch.BatchId, handle.Fence), CancellationToken.None).AsTask());
        }

        // A hand-back the store refused is logged by the writer and changes nothing here: its lease
        // lapses and the batch is claimed again, as after a crash. Stop still ends, and dispose closes.
        await Task.WhenAll(handBack).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
