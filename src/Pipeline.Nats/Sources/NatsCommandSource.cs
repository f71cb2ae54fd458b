using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Pipeline.Commands;
using Pipeline.Nats.Messages;
using Pipeline.Sources;

namespace Pipeline.Nats.Sources;

/// <summary>
/// A JetStream durable pull consumer as a pipeline source. Concurrent <see cref="NextAsync"/>
/// calls each get their own message from one bounded fetch buffer (see <see cref="NatsSourceOptions"/>
/// for how it relates to the pipeline's bound). It offers delayed nack (<c>-NAK {"delay"}</c>),
/// terminate (plain <c>+TERM</c>: nats-server 2.9 ignores a reason, so the reason is logged) and
/// keep-alive (<c>+WPI</c>). A server restart or a network drop never ends the run: the fetch loop
/// reconnects with backoff, and a settle waits for the connection at most
/// <see cref="NatsSourceOptions.SettleTimeout"/>.
/// </summary>
public sealed partial class NatsCommandSource :
    ICommandSource<NatsHandle>,
    ISupportsDelayedNack<NatsHandle>,
    ISupportsTerminate<NatsHandle>,
    ISupportsKeepAlive<NatsHandle>,
    ISupportsTelemetry<NatsHandle>,
    ISupportsDeliveryInfo<NatsHandle>,
    ISupportsStopPulling,
    IAsyncDisposable
{
    private static readonly AckOpts PlainAck = new() { DoubleAck = false };
    private static readonly AckOpts ConfirmedAck = new() { DoubleAck = true };

    private readonly NatsSourceOptions _options;
    private readonly INatsMessageDecoder _decoder;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly DeadlineTokens _deadlines;
    private readonly INatsConnection _connection;
    private readonly Fetcher _fetcher;
    private readonly INatsJSContext _js;
    private readonly AckOpts _ackOptions;
    private readonly long _idleTicks;

    private readonly Counter _acked = new();
    private readonly Counter _nacked = new();
    private readonly Counter _terminated = new();
    private readonly Counter _renewals = new();
    private long _open;
    private long _checkedAt;
    private int _waitingForOthers;
    private volatile bool _exhausted;

    /// <summary>Creates the source; nothing is fetched until the first <see cref="NextAsync"/> (or <see cref="InitializeAsync"/>).</summary>
    /// <param name="connection">The connection to consume on (events and claims are best kept on another).</param>
    /// <param name="options">Settings; defaults when null. Validated here.</param>
    /// <param name="decoder">The message shape; <see cref="CommandDecoder"/> when null.</param>
    /// <param name="logger">Diagnostics.</param>
    /// <param name="timeProvider">The clock; the system clock when null.</param>
    public NatsCommandSource(
        INatsConnection connection,
        NatsSourceOptions? options = null,
        INatsMessageDecoder? decoder = null,
        ILogger? logger = null,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new NatsSourceOptions();
        _options.Validate();
        _decoder = decoder ?? CommandDecoder.Instance;
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _deadlines = new DeadlineTokens(_options.SettleTimeout, _time);
        _connection = connection;
        _fetcher = new Fetcher(connection, _options, _logger, _time, _deadlines);
        _js = new NatsJSContext(connection);
        _ackOptions = _options.DoubleAck ? ConfirmedAck : PlainAck;
        _idleTicks = _options.IdleTimeout is { } idle ? (long)(idle.TotalSeconds * _time.TimestampFrequency) : 0;
    }

    /// <summary>The settings in force.</summary>
    public NatsSourceOptions Options => _options;

    /// <inheritdoc/>
    public TimeSpan KeepAliveInterval => _options.EffectiveKeepAliveInterval;

    /// <summary>Acks the server took (sent, or confirmed with <see cref="NatsSourceOptions.DoubleAck"/>).</summary>
    public long Acked => _acked.Value;

    /// <summary>Naks sent.</summary>
    public long Nacked => _nacked.Value;

    /// <summary>Terminates sent.</summary>
    public long Terminated => _terminated.Value;

    /// <summary>Renewals sent for handed-out deliveries.</summary>
    public long Renewals => _renewals.Value;

    /// <summary>Messages fetched from the server, redeliveries included.</summary>
    public long Fetched => _fetcher.Fetched;

    /// <summary>Failed fetch cycles (each backed off, none fatal).</summary>
    public long FetchErrors => _fetcher.FetchErrors;

    /// <summary>Deliveries this source holds: handed out and not yet settled, and fetched and not yet handed out.</summary>
    public long Held => Interlocked.Read(ref _open) + _fetcher.Buffered;

    /// <summary>
    /// What the consumer holds now, by the server's count: messages delivered and awaiting an ack
    /// (this source's own included, <see cref="Held"/>), and messages not yet delivered.
    /// </summary>
    public async ValueTask<NatsConsumerState> ReadConsumerStateAsync(CancellationToken cancellationToken)
    {
        var consumer = await _js.GetConsumerAsync(_options.Stream, _options.Consumer, cancellationToken).ConfigureAwait(false);
        var info = consumer.Info;
        return new NatsConsumerState(info.NumAckPending, info.NumPending, info.NumRedelivered);
    }

    /// <summary>Binds to (or creates) the stream and consumer now: a missing stream with <see cref="NatsSourceOptions.CreateIfMissing"/> off fails here.</summary>
    public ValueTask InitializeAsync(CancellationToken cancellationToken) => _fetcher.BindAsync(cancellationToken);

    /// <summary>
    /// This delivery as a claimer sees it (<see cref="NatsDelivery"/>): its subject, stream and
    /// consumer sequences, delivery count and headers. Read from the handle, so nothing is kept per
    /// delivery; asked only when a claimer other than the pass-through claims.
    /// </summary>
    public object? DeliveryOf(NatsHandle handle)
    {
        var message = handle.Message;
        if (!AckSubject.TryParseConsumerSequence(message.ReplyTo, out var consumerSequence))
        {
            consumerSequence = message.Metadata?.Sequence.Consumer ?? 0;
        }

        return new NatsDelivery(message.Subject, handle.StreamSequence, consumerSequence, handle.NumDelivered, message.Headers);
    }

    /// <summary>
    /// Stops fetching: the pull request in progress is drained briefly, and everything fetched
    /// and not yet handed out is given back (nak) at once, for the rest of the pool; from now on
    /// <see cref="NextAsync"/> returns null. For a worker that stops pulling and drains what it holds
    /// (deliveries already handed out are settled as usual). Idempotent; dispose does it too.
    /// </summary>
    public Task StopFetchingAsync()
    {
        _exhausted = true;
        return _fetcher.StopFetchingAsync();
    }

    /// <inheritdoc/>
    Task ISupportsStopPulling.StopPullingAsync() => StopFetchingAsync();

    /// <summary>This source without keep-alive: the pipeline then never renews, and a delivery held past the ack wait is redelivered.</summary>
    public ICommandSource<NatsHandle> WithoutKeepAlive() => new NoKeepAlive(this);

    /// <inheritdoc/>
    public ValueTask<Pulled<NatsHandle>?> NextAsync(CancellationToken cancellationToken)
    {
        // A cancelled pull takes nothing, even with messages in the buffer: the caller would not
        // settle what it was handed (the conformance suite's cancelled-pull case).
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Pulled<NatsHandle>?>(cancellationToken);
        }

        if (_exhausted)
        {
            return new((Pulled<NatsHandle>?)null);
        }

        _fetcher.EnsureStarted();
        return _fetcher.TryTake(out var fetched) ? new(Deliver(fetched)) : WaitAsync(cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask AckAsync(NatsHandle handle, CancellationToken cancellationToken)
    {
        Forget();
        return Count(handle.Message.AckAsync(_ackOptions, _deadlines.Next()), _acked);
    }

    /// <inheritdoc/>
    public ValueTask NackAsync(NatsHandle handle, CancellationToken cancellationToken)
    {
        Forget();
        return Count(handle.Message.NakAsync(_ackOptions, _deadlines.Next()), _nacked);
    }

    /// <inheritdoc/>
    public ValueTask NackAsync(NatsHandle handle, TimeSpan delay, CancellationToken cancellationToken)
    {
        Forget();
        var options = delay > TimeSpan.Zero ? _ackOptions with { NakDelay = delay } : _ackOptions;
        return Count(handle.Message.NakAsync(options, _deadlines.Next()), _nacked);
    }

    /// <inheritdoc/>
    public ValueTask TerminateAsync(NatsHandle handle, string reason, CancellationToken cancellationToken)
    {
        Forget();
        // nats-server 2.9 compares the payload to exactly "+TERM": a reason would make it ignore the terminate.
        Log.Terminated(_logger, handle.StreamSequence, handle.NumDelivered, reason);
        return Count(handle.Message.AckTerminateAsync(_ackOptions, _deadlines.Next()), _terminated);
    }

    /// <inheritdoc/>
    public ValueTask KeepAliveAsync(NatsHandle handle, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled)
        {
            return Count(handle.Message.AckProgressAsync(cancellationToken: _deadlines.Next()), _renewals);
        }

        return RenewAsync(handle, cancellationToken);

        // The pipeline cancels a renewal when it settles: one waiting for a reconnect must end
        // then, not at the settle deadline (renewals are an interval apart, so the link is cheap).
        async ValueTask RenewAsync(NatsHandle handle, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadlines.Next());
            await handle.Message.AckProgressAsync(cancellationToken: linked.Token).ConfigureAwait(false);
            _renewals.Increment();
        }
    }

    /// <summary>
    /// Stops fetching, gives back (naks) what was fetched and never handed out, and waits (at most
    /// the settle timeout) until the server has read every settle sent: acks and naks without
    /// double ack are only written to the connection's buffer, and the connection is disposed next.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _fetcher.DisposeAsync().ConfigureAwait(false);
        try
        {
            // A round trip: the server has processed everything written before the ping.
            await _connection.PingAsync(_deadlines.Next()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The server is away: what was not sent comes back after the ack wait.
        }

        _deadlines.Dispose();
    }

    private async ValueTask<Pulled<NatsHandle>?> WaitAsync(CancellationToken cancellationToken)
    {
        if (_idleTicks == 0)
        {
            return await _fetcher.TakeAsync(cancellationToken).ConfigureAwait(false) is { } next ? Deliver(next) : null;
        }

        while (!_exhausted)
        {
            // Idle since the last arrival or take, or the last look at a consumer still holding work.
            var since = Math.Max(_fetcher.LastActivity, Interlocked.Read(ref _checkedAt));
            var idleFor = since == 0 ? TimeSpan.Zero : _time.GetElapsedTime(since); // 0: not fetching yet
            var left = _options.IdleTimeout!.Value - idleFor;
            if (left <= TimeSpan.Zero && !await OthersHoldWorkAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!_exhausted)
                {
                    _exhausted = true;
                    Log.Idle(_logger, _options.IdleTimeout.Value);
                    // Nothing more is handed out: stop pulling now, not at dispose after the drain.
                    _ = _fetcher.StopFetchingAsync();
                }

                break;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(left > TimeSpan.Zero ? left : _options.IdleTimeout.Value);
            try
            {
                return await _fetcher.TakeAsync(wait.Token).ConfigureAwait(false) is { } next ? Deliver(next) : null;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Idle for a while: look again how long.
            }
        }

        return null;
    }

    /// <summary>
    /// Idle: whether to wait on (<see cref="NatsSourceOptions.DrainTimeout"/>) because the consumer
    /// holds work this source does not, which comes back here after its ack wait. Looked at once an
    /// idle timeout; a consumer that cannot be read counts as holding work. False past the drain
    /// timeout (nothing arrived for that long), or without one.
    /// </summary>
    private async ValueTask<bool> OthersHoldWorkAsync(CancellationToken cancellationToken)
    {
        if (_options.DrainTimeout is not { } drain || _time.GetElapsedTime(_fetcher.LastActivity) >= drain)
        {
            if (Interlocked.Exchange(ref _waitingForOthers, 0) == 1)
            {
                Log.DrainGaveUp(_logger, _options.DrainTimeout);
            }

            return false;
        }

        long elsewhere;
        string? unreadable = null;
        try
        {
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(_options.SettleTimeout);
            var state = await ReadConsumerStateAsync(bound.Token).ConfigureAwait(false);
            elsewhere = state.AwaitingAck + (long)Math.Min(state.Pending, long.MaxValue / 2) - Held;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            elsewhere = 1;
            unreadable = ex.Message;
        }

        if (elsewhere <= 0)
        {
            Interlocked.Exchange(ref _waitingForOthers, 0);
            return false;
        }

        Interlocked.Exchange(ref _checkedAt, _time.GetTimestamp());
        if (Interlocked.Exchange(ref _waitingForOthers, 1) == 0)
        {
            Log.WaitingForConsumer(_logger, unreadable is null ? $"{elsewhere} messages awaiting an ack elsewhere or pending" : $"its state could not be read ({unreadable})", drain);
        }

        return true;
    }

    private Pulled<NatsHandle> Deliver(Fetched fetched)
    {
        var message = fetched.Message;
        if (!AckSubject.TryParse(message.ReplyTo, out var sequence, out var delivered))
        {
            var metadata = message.Metadata;
            sequence = metadata?.Sequence.Stream ?? 0;
            delivered = metadata?.NumDelivered ?? 1;
        }

        var delivery = new NatsDeliveredMessage(message.Subject, message.Data ?? [], message.Headers, sequence, delivered);
        ClaimOutcome outcome;
        try
        {
            outcome = _decoder.Decode(delivery);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A decoder must not throw; if a custom one does, the message still gets its handle
            // (and so its settle): a claim failure, like any body that cannot be read.
            outcome = ClaimOutcome.Failed($"stream sequence {sequence}: the decoder threw {ex.GetType().Name}: {ex.Message}");
        }

        Interlocked.Increment(ref _open);
        return new Pulled<NatsHandle>(outcome, new NatsHandle(message, sequence, delivered))
        {
            Parent = TraceParentOf(delivery),
        };
    }

    // Every handle is settled exactly once (the pipeline's guarantee): the count of those held.
    private void Forget() => Interlocked.Decrement(ref _open);

    private static ValueTask Count(ValueTask call, Counter counter)
    {
        if (call.IsCompletedSuccessfully)
        {
            counter.Increment();
            return ValueTask.CompletedTask;
        }

        // Not `IsCompleted ? call : ...`: a call that completes between the two checks would be
        // handed back uncounted (seen: one ack in 50,000 missing from Acked).
        return CountWhenDoneAsync(call, counter);

        static async ValueTask CountWhenDoneAsync(ValueTask call, Counter counter)
        {
            await call.ConfigureAwait(false);
            counter.Increment();
        }
    }

    private sealed class Counter
    {
        private long _value;

        public long Value => Volatile.Read(ref _value);

        public void Increment() => Interlocked.Increment(ref _value);
    }

    /// <summary>The source's pull and settle calls, without <see cref="ISupportsKeepAlive{THandle}"/> (the pipeline looks for capabilities by interface).</summary>
    private sealed class NoKeepAlive(NatsCommandSource source) :
        ICommandSource<NatsHandle>,
        ISupportsDelayedNack<NatsHandle>,
        ISupportsTerminate<NatsHandle>,
        ISupportsDeliveryInfo<NatsHandle>,
        ISupportsStopPulling
    {
        public object? DeliveryOf(NatsHandle handle) => source.DeliveryOf(handle);

        public Task StopPullingAsync() => source.StopFetchingAsync();

        public ValueTask<Pulled<NatsHandle>?> NextAsync(CancellationToken cancellationToken) => source.NextAsync(cancellationToken);

        public ValueTask AckAsync(NatsHandle handle, CancellationToken cancellationToken) => source.AckAsync(handle, cancellationToken);

        public ValueTask NackAsync(NatsHandle handle, CancellationToken cancellationToken) => source.NackAsync(handle, cancellationToken);

        public ValueTask NackAsync(NatsHandle handle, TimeSpan delay, CancellationToken cancellationToken) => source.NackAsync(handle, delay, cancellationToken);

        public ValueTask TerminateAsync(NatsHandle handle, string reason, CancellationToken cancellationToken) => source.TerminateAsync(handle, reason, cancellationToken);
    }
}
