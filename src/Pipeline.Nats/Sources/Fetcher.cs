using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using Polly;
using Polly.Retry;

namespace Pipeline.Nats.Sources;

/// <summary>
/// The one fetch loop of a source: keeps at most <see cref="NatsSourceOptions.FetchBatch"/>
/// messages fetched ahead, asking for more when half of them are taken (one pull request at a
/// time, expiring after <see cref="NatsSourceOptions.FetchExpires"/>). Failures back off through
/// Polly and never end the loop; a reconnect restarts the pull at once (the server forgot the old
/// request). Messages waiting here are renewed on the keep-alive interval, since their ack-wait
/// clock is already running.
/// </summary>
internal sealed class Fetcher : IAsyncDisposable
{
    private const int EmptyFetchesBeforeRebind = 3;

    // On stop, the pull request in progress is read until the server ends it (its expiry, or its
    // batch filled), at most this much past its expiry. A request the client merely stops reading
    // stays open on the server, which keeps delivering into it (the connection's shared inbox
    // still has interest): a message given back by the stop, then delivered into the abandoned
    // request, was dropped and held from the pool for an ack wait (measured: one in each stop).
    private static readonly TimeSpan DrainPastExpiry = TimeSpan.FromSeconds(1);

    private readonly INatsConnection _connection;
    private readonly NatsTopology _topology;
    private readonly NatsSourceOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly DeadlineTokens _deadlines;
    private readonly Channel<Fetched> _ready = Channel.CreateUnbounded<Fetched>(new UnboundedChannelOptions { SingleWriter = true });
    // The fetched messages not yet taken, in fetch order, for the renewal sweep. Takers only mark a
    // message taken (the channel hands them out in this same order), and the taken ones are trimmed
    // from the head under the lock: cheaper per message than a concurrent set's add and remove.
    private readonly Queue<Fetched> _waiting = new();
    private readonly object _waitingGate = new();
    private readonly SemaphoreSlim _room = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ResiliencePipeline _retry;
    private readonly NatsJSFetchOpts _fetchOptions;
    private readonly int _lowWater;
    private readonly ITimer _renewals;
    private readonly object _startGate = new();
    private Task? _loop;
    private Task? _stopped;
    private volatile bool _draining;
    // When the pull request in progress ends on the server (a timestamp); drained messages are
    // given back with a delay past it, so the server cannot deliver them into it again.
    private long _fetchEndsAt;
    // Naks of what the last pull request delivered after the stop; written by the loop only, read once it has ended.
    private readonly List<Task> _drained = [];
    private INatsJSConsumer? _consumer;
    private CancellationTokenSource? _currentFetch;
    private int _emptyFetches;
    private long _lastActivity;
    private long _fetched;
    private long _fetchErrors;

    public Fetcher(INatsConnection connection, NatsSourceOptions options, ILogger logger, TimeProvider time, DeadlineTokens deadlines)
    {
        _connection = connection;
        _topology = new NatsTopology(new NatsJSContext(connection), options);
        _options = options;
        _logger = logger;
        _time = time;
        _deadlines = deadlines;
        _lowWater = options.FetchBatch / 2;
        _fetchOptions = new NatsJSFetchOpts
        {
            MaxMsgs = options.FetchBatch,
            Expires = options.FetchExpires,
            IdleHeartbeat = options.FetchExpires / 4 < TimeSpan.FromSeconds(1) ? null : options.FetchExpires / 4,
        };
        _retry = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = options.ReconnectBackoff.Base,
                MaxDelay = options.ReconnectBackoff.Max,
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is not null && !_stop.IsCancellationRequested),
                OnRetry = args =>
                {
                    Interlocked.Increment(ref _fetchErrors);
                    _consumer = null; // look the consumer up again (it may have been deleted, or the server restarted)
                    Log.FetchFailed(_logger, args.Outcome.Exception!, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        _renewals = time.CreateTimer(static state => ((Fetcher)state!).RenewWaiting(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _connection.ConnectionOpened += OnConnectionOpened;
    }

    /// <summary>Messages fetched so far.</summary>
    public long Fetched => Volatile.Read(ref _fetched);

    /// <summary>Fetch failures (each backed off).</summary>
    public long FetchErrors => Volatile.Read(ref _fetchErrors);

    /// <summary>Messages fetched and not yet taken.</summary>
    public int Buffered => _ready.Reader.Count;

    /// <summary>When a message last arrived or was taken, or the first fetch started (a <see cref="TimeProvider"/> timestamp; 0 before that): the idle clock.</summary>
    public long LastActivity => Volatile.Read(ref _lastActivity);

    /// <summary>Binds (creating what is missing when allowed) now, so a bad setting fails here rather than in the loop.</summary>
    public async ValueTask BindAsync(CancellationToken cancellationToken) =>
        _consumer = await _topology.BindAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Starts the loop once.</summary>
    public void EnsureStarted()
    {
        if (_loop is not null)
        {
            return;
        }

        lock (_startGate)
        {
            if (_loop is null && !_stop.IsCancellationRequested)
            {
                // Swept twice an interval, renewing what waited half of one: a buffered message is
                // renewed at most an interval apart, and when the pipeline takes it, its own
                // keep-alive renews within one more interval, so it is never silent for more than
                // two intervals, which Validate keeps within the ack wait.
                var sweep = _options.EffectiveKeepAliveInterval / 2;
                _renewals.Change(sweep, sweep);
                _loop = Task.Run(LoopAsync);
            }
        }
    }

    public bool TryTake(out Fetched fetched)
    {
        if (_ready.Reader.TryRead(out fetched!))
        {
            Taken(fetched);
            return true;
        }

        return false;
    }

    /// <summary>The next fetched message; null once fetching has stopped and the buffer is empty.</summary>
    public async ValueTask<Fetched?> TakeAsync(CancellationToken cancellationToken)
    {
        Fetched fetched;
        try
        {
            // ReadAsync, not WaitToReadAsync + TryRead: a write wakes one reader, where it would
            // wake every waiting pull loop for one message (measured: half the throughput).
            fetched = await _ready.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }

        Taken(fetched);
        return fetched;
    }

    /// <summary>
    /// Ends the fetch loop and the renewals and gives back (naks) what waits in the buffer, once:
    /// an idle source calls it so what arrives later goes to the rest of the pool, not to a
    /// worker that is only draining.
    /// </summary>
    public Task StopFetchingAsync()
    {
        lock (_startGate)
        {
            return _stopped ??= StopOnceAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopFetchingAsync().ConfigureAwait(false);
        _stop.Dispose();
        _room.Dispose();
    }

    private async Task StopOnceAsync()
    {
        _connection.ConnectionOpened -= OnConnectionOpened;
        _draining = true;
        await _stop.CancelAsync().ConfigureAwait(false);
        // No new pull request starts now (the loop checks the stop after publishing its fetch);
        // the one in progress is read until the server ends it, its messages given back as they come.
        try
        {
            Volatile.Read(ref _currentFetch)?.CancelAfter(_options.FetchExpires + DrainPastExpiry);
        }
        catch (ObjectDisposedException)
        {
            // It ended meanwhile.
        }

        await _renewals.DisposeAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        await Task.WhenAll(_drained).ConfigureAwait(false);

        _ready.Writer.TryComplete(); // a take waiting now gets null
        // What was fetched and never handed out goes back at once, not after the ack wait. The naks
        // go out together: with the server away each waits up to the settle deadline, and one
        // after another they would hold the stop up for FetchBatch deadlines.
        var giveBack = new List<Task>(_ready.Reader.Count);
        while (_ready.Reader.TryRead(out var left))
        {
            giveBack.Add(GiveBackAsync(left.Message, _deadlines.Next()));
        }

        await Task.WhenAll(giveBack).ConfigureAwait(false);
    }

    /// <summary>How long the pull request in progress has left on the server, with a margin.</summary>
    private TimeSpan RequestLeft()
    {
        var left = Volatile.Read(ref _fetchEndsAt) - _time.GetTimestamp();
        return left <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds((double)left / _time.TimestampFrequency) + TimeSpan.FromMilliseconds(100);
    }

    private static async Task GiveBackAsync(INatsJSMsg<byte[]> message, CancellationToken deadline, TimeSpan delay = default)
    {
        try
        {
            await message.NakAsync(delay > TimeSpan.Zero ? new AckOpts { NakDelay = delay } : null, cancellationToken: deadline).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The server redelivers it after the ack wait anyway.
        }
    }

    private void Taken(Fetched fetched)
    {
        fetched.MarkTaken();
        // A take is activity too: a pipeline busy past the idle timeout took nothing and so let
        // nothing arrive, and the stream is not idle for that (the idle clock restarts here).
        Volatile.Write(ref _lastActivity, _time.GetTimestamp());
        if (_ready.Reader.Count <= _lowWater && _room.CurrentCount == 0)
        {
            try
            {
                _room.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another taker woke the loop first.
            }
        }
    }

    private async Task LoopAsync()
    {
        var stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await _retry.ExecuteAsync(static (self, token) => self.FetchOnceAsync(token), this, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async ValueTask FetchOnceAsync(CancellationToken stop)
    {
        while (_ready.Reader.Count > _lowWater)
        {
            await _room.WaitAsync(stop).ConfigureAwait(false);
        }

        var consumer = _consumer ??= await _topology.BindAsync(stop).ConfigureAwait(false);
        // The idle clock starts here: a slow connect or stream creation is not idleness.
        Interlocked.CompareExchange(ref _lastActivity, _time.GetTimestamp(), 0);
        var want = _options.FetchBatch - _ready.Reader.Count;
        // Not linked to the stop: a stop lets the request in progress drain (StopOnceAsync).
        using var fetch = new CancellationTokenSource();
        Volatile.Write(ref _fetchEndsAt, _time.GetTimestamp() + (long)(_options.FetchExpires.TotalSeconds * _time.TimestampFrequency));
        Interlocked.Exchange(ref _currentFetch, fetch); // a fence: the stop sees this fetch, or this sees the stop
        stop.ThrowIfCancellationRequested();
        var received = 0;
        try
        {
            var options = want == _fetchOptions.MaxMsgs ? _fetchOptions : _fetchOptions with { MaxMsgs = want };
            await foreach (var message in consumer.FetchAsync(options, NatsRawSerializer<byte[]>.Default, fetch.Token).ConfigureAwait(false))
            {
                received++;
                if (_draining)
                {
                    // Given back past the request's end, or the server would hand it straight back to it.
                    _drained.Add(GiveBackAsync(message, _deadlines.Next(), RequestLeft()));
                }
                else
                {
                    Add(message);
                }
            }
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            // The connection reopened: the server forgot this pull request, so ask again now.
        }
        finally
        {
            Interlocked.CompareExchange(ref _currentFetch, null, fetch);
        }

        // A deleted consumer gives no error, only empty fetches: look it up again now and then.
        _emptyFetches = received == 0 ? _emptyFetches + 1 : 0;
        if (_emptyFetches >= EmptyFetchesBeforeRebind)
        {
            _emptyFetches = 0;
            _consumer = null;
        }
    }

    private void Add(INatsJSMsg<byte[]> message)
    {
        var fetched = new Fetched(message, _time.GetTimestamp());
        lock (_waitingGate)
        {
            TrimTaken();
            _waiting.Enqueue(fetched);
        }

        Interlocked.Increment(ref _fetched);
        Volatile.Write(ref _lastActivity, fetched.Since);
        _ready.Writer.TryWrite(fetched);
    }

    private ValueTask OnConnectionOpened(object? sender, NatsEventArgs args)
    {
        Log.Reconnected(_logger);
        Volatile.Read(ref _currentFetch)?.Cancel();
        return ValueTask.CompletedTask;
    }

    /// <summary>Renews fetched messages that have waited half an interval (a full pipeline takes none).</summary>
    private void RenewWaiting()
    {
        var now = _time.GetTimestamp();
        var interval = _options.EffectiveKeepAliveInterval / 2;
        List<Fetched>? due = null;
        lock (_waitingGate)
        {
            TrimTaken();
            foreach (var fetched in _waiting)
            {
                if (!fetched.IsTaken && _time.GetElapsedTime(fetched.Since, now) >= interval)
                {
                    fetched.Since = now;
                    (due ??= []).Add(fetched);
                }
            }
        }

        // The calls go out after the lock: the fetch loop adds under it.
        foreach (var fetched in due ?? [])
        {
            _ = RenewAsync(fetched);
        }
    }

    private void TrimTaken()
    {
        while (_waiting.TryPeek(out var head) && head.IsTaken)
        {
            _waiting.Dequeue();
        }
    }

    private async Task RenewAsync(Fetched fetched)
    {
        try
        {
            await fetched.Message.AckProgressAsync(cancellationToken: _deadlines.Next()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.BufferRenewalFailed(_logger, ex, fetched.Message.Metadata?.Sequence.Stream ?? 0);
        }
    }
}

/// <summary>A fetched message waiting to be taken, and since when it has waited unrenewed.</summary>
internal sealed class Fetched(INatsJSMsg<byte[]> message, long since)
{
    public INatsJSMsg<byte[]> Message { get; } = message;

    private volatile bool _taken;

    public long Since { get; set; } = since;

    /// <summary>Handed to a <c>NextAsync</c>: the pipeline renews it from now on.</summary>
    public bool IsTaken => _taken;

    public void MarkTaken() => _taken = true;
}
