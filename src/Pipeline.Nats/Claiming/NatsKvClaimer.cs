using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Nats.Sources;
using Polly;
using Polly.Retry;

namespace Pipeline.Nats.Claiming;

/// <summary>
/// Claims a command by creating a record under its <c>command_id</c> in a KV bucket (one round trip
/// for a new key), and keeps in that record what became of the command, so a redelivery can tell
/// "finished, ack lost" from "never ran":
/// <list type="bullet">
/// <item>no record (or a released one): <see cref="ClaimOutcomeKind.Claimed"/>, recorded as claimed by this worker and the stream sequence;</item>
/// <item>completed, or failed and given up on: <see cref="ClaimOutcomeKind.AlreadyClaimed"/> (acked and skipped);</item>
/// <item>claimed by a worker whose heartbeat is gone: taken over (compare-and-set on the record's
/// revision, so of two workers only one does) and run again: the at-least-once window of a tool
/// that was running when its worker died;</item>
/// <item>claimed by a live worker: <see cref="ClaimOutcomeKind.RetryLater"/> (nacked with a delay,
/// never acked: acking could lose a command whose delivery is the one that must run it);</item>
/// <item>claimed by this claimer for the same stream sequence (a redelivery the engine did not hold
/// back as running here), or for a command it no longer holds: claimed again.</item>
/// </list>
/// The engine reports each granted claim back (<see cref="IClaimRecorder"/>): a release deletes the
/// record, an outcome marks it completed or failed; both only while the record is still this
/// claim's revision. Records expire with the bucket's MaxAge.
/// </summary>
/// <remarks>
/// <para><b>How "gone" is known.</b> Each claimer puts a heartbeat key (its instance, a random token
/// made at construction) in a second bucket, <see cref="NatsKvClaimerOptions.WorkersBucket"/>,
/// every <see cref="NatsKvClaimerOptions.HeartbeatInterval"/>; that bucket's MaxAge is
/// <see cref="NatsKvClaimerOptions.WorkerTimeout"/>, so the key of a worker that stopped beating
/// (killed, partitioned) expires by itself: nats-server 2.9 has no per-key TTL, and a bucket MaxAge
/// needs no clock agreement between workers. A clean stop deletes the key at once. Identity is the
/// instance, not the worker id, which users set and two live processes could share.</para>
/// <para>The stream sequence comes from the claim's context: the <see cref="NatsDelivery"/> that
/// <see cref="NatsCommandSource"/> describes each delivery with (<see cref="ClaimContext.Delivery"/>).
/// Without it (another source, or a context with no delivery) a claimer cannot tell its own
/// redelivery from a second publish, and treats a record it still holds as running. A KV failure
/// throws, which the pipeline treats as a retry later.</para>
/// </remarks>
public sealed class NatsKvClaimer : IClaimer, IClaimRecorder, IAsyncDisposable
{
    // Longer ids are hashed: well inside the server's control line, with the bucket's prefix.
    private const int MaxVerbatimKey = 256;

    // Compare-and-set rounds lost to other writers before a claim answers RetryLater.
    private const int MaxContests = 3;

    private readonly INatsConnection _connection;
    private readonly INatsKVContext _kv;
    private readonly NatsKvClaimerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly byte[] _workerId;
    private readonly SemaphoreSlim _bind = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ResiliencePipeline _beatRetry;
    private readonly ResiliencePipeline _recordRetry;

    // The claims this claimer granted and the engine has not yet released or ended, by key: the
    // deliveries (command instances) that hold each, and the record's revision to compare-and-set.
    private readonly ConcurrentDictionary<string, Grant> _grants = new(StringComparer.Ordinal);

    // The claims in progress here, by key: the turn each waits for (see ClaimAsync).
    private readonly ConcurrentDictionary<string, Task> _claiming = new(StringComparer.Ordinal);
    private INatsKVStore? _claims;
    private INatsKVStore? _workers;
    private Task? _heartbeats;
    private long _lastBeat;
    private int _beatFailing;
    private int _disposed;

    /// <summary>Creates the claimer; the buckets are bound (or created) and the first heartbeat put at the first claim.</summary>
    /// <param name="connection">A connection, best not the consumer's.</param>
    /// <param name="options">Settings; defaults when null. Validated here.</param>
    /// <param name="logger">Takeovers and heartbeat trouble.</param>
    /// <param name="timeProvider">The clock; the system clock when null.</param>
    public NatsKvClaimer(INatsConnection connection, NatsKvClaimerOptions? options = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options ?? new NatsKvClaimerOptions();
        _options.Validate();
        _connection = connection;
        _kv = new NatsKVContext(new NatsJSContext(connection));
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _workerId = Encoding.UTF8.GetBytes(_options.WorkerId);
        Instance = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        // A beat retries briefly within its interval: the next one is due then anyway.
        _beatRetry = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddTimeout(_options.HeartbeatInterval)
            .AddRetry(new RetryStrategyOptions { MaxRetryAttempts = 3, BackoffType = DelayBackoffType.Exponential, Delay = TimeSpan.FromMilliseconds(100), UseJitter = true })
            .Build();
        // A record write outlives a server restart (the client holds it until it reconnects), within RecordTimeout.
        _recordRetry = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddTimeout(_options.RecordTimeout)
            .AddRetry(new RetryStrategyOptions { MaxRetryAttempts = int.MaxValue, BackoffType = DelayBackoffType.Exponential, Delay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1), UseJitter = true })
            .Build();
        _connection.ConnectionOpened += OnConnectionOpened;
    }

    /// <summary>This claimer's identity in claim records and its heartbeat key: random, one per claimer.</summary>
    public string Instance { get; }

    /// <summary>The settings in force.</summary>
    public NatsKvClaimerOptions Options => _options;

    /// <summary>The key a command id is claimed under: the id itself when it is a valid KV key of at most 256 characters, else a hash of it.</summary>
    public static string KeyFor(string commandId)
    {
        ArgumentException.ThrowIfNullOrEmpty(commandId);
        // A KV key is a subject's tail: no empty token (a leading, trailing or doubled '.'), and
        // short (a subject past the server's 4 KB control line closes the connection).
        var valid = commandId.Length <= MaxVerbatimKey && commandId[0] != '.' && commandId[^1] != '.' && !commandId.Contains("..", StringComparison.Ordinal)
            && commandId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '/' or '_' or '=' or '.');
        return valid ? commandId : "sha256." + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(commandId)));
    }

    /// <summary>
    /// Claims the pulled command, recording the stream sequence of the delivery it came with
    /// (<see cref="NatsDelivery.StreamSequence"/> of <see cref="ClaimContext.Delivery"/>, when it is one).
    /// </summary>
    public async ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
    {
        var pulled = context.Pulled;
        if (pulled.Command is not { } command)
        {
            return pulled;
        }

        // Stopped: its heartbeat is gone, and a claim made now would be taken for a dead worker's.
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        var (claims, workers) = await BindAsync(cancellationToken).ConfigureAwait(false);
        await StayAliveAsync(cancellationToken).ConfigureAwait(false);
        var key = KeyFor(command.CommandId);
        ulong? sequence = context.Delivery is NatsDelivery delivery ? delivery.StreamSequence : null;

        // One claim of a key at a time here: a claim that read the record another claim here had
        // just created, before that one listed its grant, found it claimed by this claimer and
        // not held, and took it again (the command ran twice).
        var turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        while (!_claiming.TryAdd(key, turn.Task))
        {
            if (_claiming.TryGetValue(key, out var ahead))
            {
                await ahead.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        try
        {
            return await ClaimKeyAsync(pulled, command, key, sequence, claims, workers, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _claiming.TryRemove(KeyValuePair.Create(key, turn.Task));
            turn.TrySetResult();
        }
    }

    private async ValueTask<ClaimOutcome> ClaimKeyAsync(ClaimOutcome pulled, Command command, string key, ulong? sequence, INatsKVStore claims, INatsKVStore workers, CancellationToken cancellationToken)
    {
        var mine = new ClaimRecord(ClaimState.Claimed, _options.WorkerId, Instance, sequence).ToUtf8();

        // The create step of TryCreateAsync (expected revision 0), without its read on a conflict:
        // the record is read below anyway. One round trip for a new key.
        var created = await claims.TryUpdateAsync(key, mine, revision: 0, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (created.Success)
        {
            _grants[key] = new Grant(created.Value, sequence, command);
            return pulled;
        }

        ThrowUnlessConflict(created.Error);
        for (var contest = 1; contest <= MaxContests; contest++)
        {
            var read = await claims.TryGetEntryAsync<byte[]>(key, cancellationToken: cancellationToken).ConfigureAwait(false);
            ulong revision;
            ClaimRecord? record = null;
            if (read.Success)
            {
                revision = read.Value.Revision;
                // A value no claimer wrote is read as an earlier version's claim: it holds the command.
                record = ClaimRecord.Parse(read.Value.Value) ?? ClaimRecord.Unknown;
                if (record.State == ClaimState.Claimed && record.Instance == Instance && _grants.TryGetValue(key, out var held) && held.Revision == revision)
                {
                    // Held here. Its own stream message again is a redelivery the engine did not
                    // hold back as running (it raced the first claim): it shares the grant, and
                    // whichever delivery ends first writes the outcome. Another publish waits.
                    if (sequence is not { } s || record.Sequence != s)
                    {
                        return ClaimOutcome.RetryLater($"claimed by this worker (stream sequence {record.Sequence?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}), which still holds it", command);
                    }

                    if (held.TryJoin(command))
                    {
                        return pulled;
                    }

                    // Ended: its outcome or release is being written. Read what it wrote once it
                    // has (read before, the record still says claimed here).
                    await held.Written.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (await DecideAsync(record, command, sequence, workers, cancellationToken).ConfigureAwait(false) is { } decided)
                {
                    return decided;
                }
            }
            else if (read.Error is NatsKVKeyDeletedException deleted)
            {
                revision = deleted.Revision; // released: free to claim
            }
            else if (read.Error is NatsKVKeyNotFoundException)
            {
                revision = 0; // expired since the create was refused
            }
            else
            {
                throw read.Error;
            }

            var taken = await claims.TryUpdateAsync(key, mine, revision, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (taken.Success)
            {
                _grants[key] = new Grant(taken.Value, sequence, command);
                if (record is { State: ClaimState.Claimed } other && other.Instance != Instance)
                {
                    Log.ClaimTakenOver(_logger, command.CommandId, other.Worker, other.IsLegacy ? "(legacy record)" : other.Instance, other.Sequence?.ToString(CultureInfo.InvariantCulture) ?? "unknown");
                }

                return pulled;
            }

            ThrowUnlessConflict(taken.Error); // another writer came first: read what it wrote
        }

        // Lost every compare-and-set (or every join) to other writers.
        return ClaimOutcome.RetryLater($"the claim record of {command.CommandId} kept changing under {MaxContests} attempts to take it", command);
    }

    /// <summary>Releases a claim the engine hands back unrun: the record is deleted, if it is still this claim's revision.</summary>
    public async ValueTask ReleaseAsync(ClaimOutcome claimed, CancellationToken cancellationToken)
    {
        if (TakeGrant(claimed, release: true, "the release") is not { } held)
        {
            return;
        }

        // Deleted rather than marked released: a later claim is then a plain create again (one
        // round trip), and a released record has nothing a later claim needs to know.
        await WriteAsync(held, "the release", static (store, held, token) => DeleteAsync(store, held, token), cancellationToken).ConfigureAwait(false);

        static async ValueTask<NatsResult<ulong>> DeleteAsync(INatsKVStore store, (string Key, Grant Grant, Command Command) held, CancellationToken token)
        {
            var deleted = await store.TryDeleteAsync(held.Key, new NatsKVDeleteOpts { Revision = held.Grant.Revision }, token).ConfigureAwait(false);
            return deleted.Success ? held.Grant.Revision : deleted.Error;
        }
    }

    /// <summary>Records that the command's tool ended for good (completed or failed), if the record is still this claim's revision.</summary>
    public async ValueTask RecordOutcomeAsync(ClaimOutcome claimed, bool succeeded, CancellationToken cancellationToken)
    {
        var what = succeeded ? "completed" : "failed";
        if (TakeGrant(claimed, release: false, what) is not { } held)
        {
            return;
        }

        var record = new ClaimRecord(succeeded ? ClaimState.Completed : ClaimState.Failed, _options.WorkerId, Instance, held.Grant.Sequence).ToUtf8();
        await WriteAsync(held, what, (store, held, token) => store.TryUpdateAsync(held.Key, record, held.Grant.Revision, cancellationToken: token), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the heartbeat and deletes it, so what this worker still holds is free to the pool at once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _connection.ConnectionOpened -= OnConnectionOpened;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_heartbeats is { } heartbeats)
        {
            await heartbeats.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        if (_workers is { } workers)
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await workers.TryDeleteAsync(Instance, cancellationToken: bound.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // It expires after WorkerTimeout anyway.
            }
        }

        _stop.Dispose();
    }

    private static void ThrowUnlessConflict(Exception error)
    {
        if (error is not NatsKVWrongLastRevisionException)
        {
            throw error;
        }
    }

    /// <summary>Null to take the record (compare-and-set on its revision), or the answer that leaves it as it is.</summary>
    private async ValueTask<ClaimOutcome?> DecideAsync(ClaimRecord record, Command command, ulong? sequence, INatsKVStore workers, CancellationToken cancellationToken)
    {
        if (record.State is ClaimState.Completed or ClaimState.Failed)
        {
            return ClaimOutcome.AlreadyClaimed(command); // ran to its end: an ack was lost, or it was published again
        }

        if (record.IsLegacy)
        {
            // An earlier version's record says neither outcome nor liveness: kept to its old rule,
            // its own stream message again is a retry, anything else a second publish.
            return sequence is { } s && record.Sequence == s ? null : ClaimOutcome.AlreadyClaimed(command);
        }

        if (record.Instance == Instance)
        {
            // Claimed here once, and no longer held (a release or an outcome that could not be
            // written): nothing runs it here, so this delivery claims it again.
            return null;
        }

        var at = record.Sequence?.ToString(CultureInfo.InvariantCulture) ?? "unknown";
        var heartbeat = await workers.TryGetEntryAsync<byte[]>(record.Instance, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (heartbeat.Success)
        {
            return ClaimOutcome.RetryLater($"claimed by worker {record.Worker} (stream sequence {at}), which is alive", command);
        }

        return heartbeat.Error is NatsKVKeyNotFoundException or NatsKVKeyDeletedException ? null : throw heartbeat.Error;
    }

    /// <summary>
    /// The grant <paramref name="claimed"/>'s delivery holds, when this call is the one to write
    /// for it: an outcome from any holder ends the grant; a release only from its last holder.
    /// The grant stays listed, ended, until its write is done (<see cref="WriteAsync"/>): a claim
    /// that reads the record before the write lands then finds it still held here, and is not
    /// granted from under the write (a second run of a command that just completed).
    /// </summary>
    private (string Key, Grant Grant, Command Command)? TakeGrant(ClaimOutcome claimed, bool release, string what)
    {
        if (claimed.Command is not { } command || _claims is null)
        {
            return null;
        }

        var key = KeyFor(command.CommandId);
        if (!_grants.TryGetValue(key, out var grant) || !grant.TryEnd(command, release))
        {
            Log.ClaimSuperseded(_logger, command.CommandId, what);
            return null;
        }

        return (key, grant, command);
    }

    private async ValueTask WriteAsync(
        (string Key, Grant Grant, Command Command) held,
        string what,
        Func<INatsKVStore, (string Key, Grant Grant, Command Command), CancellationToken, ValueTask<NatsResult<ulong>>> write,
        CancellationToken cancellationToken)
    {
        var store = _claims!;
        try
        {
            await _recordRetry.ExecuteAsync(
                async token =>
                {
                    var result = await write(store, held, token).ConfigureAwait(false);
                    if (!result.Success)
                    {
                        // Not this claim's revision any more: an earlier try of this write landed
                        // (its reply lost in a restart), or another worker took the claim over.
                        // Either way nothing is left to write.
                        if (result.Error is NatsKVWrongLastRevisionException)
                        {
                            Log.ClaimSuperseded(_logger, held.Command.CommandId, what);
                            return;
                        }

                        throw result.Error; // retried
                    }
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw new InvalidOperationException(
                $"Writing {what} to the claim record of {held.Command.CommandId} in bucket {_options.Bucket} failed ({ex.GetType().Name}: {ex.Message}); the record stays claimed, and once this worker is gone a redelivery runs the command again.",
                ex);
        }
        finally
        {
            // Written, or given up on (then a delivery here claims the command again).
            _grants.TryRemove(KeyValuePair.Create(held.Key, held.Grant));
            held.Grant.EndWrite();
        }
    }

    private async ValueTask<(INatsKVStore Claims, INatsKVStore Workers)> BindAsync(CancellationToken cancellationToken)
    {
        if (_claims is { } bound && _workers is { } beating)
        {
            return (bound, beating);
        }

        await _bind.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_claims is null || _workers is null)
            {
                var workers = _options.CreateIfMissing
                    ? await _kv.CreateOrUpdateStoreAsync(new NatsKVConfig(_options.WorkersBucket) { MaxAge = _options.WorkerTimeout, History = 1, Storage = NatsKVStorageType.File }, cancellationToken).ConfigureAwait(false)
                    : await _kv.GetStoreAsync(_options.WorkersBucket, cancellationToken).ConfigureAwait(false);
                var claims = _options.CreateIfMissing
                    ? await _kv.CreateOrUpdateStoreAsync(new NatsKVConfig(_options.Bucket) { MaxAge = _options.MaxAge, Storage = NatsKVStorageType.File }, cancellationToken).ConfigureAwait(false)
                    : await _kv.GetStoreAsync(_options.Bucket, cancellationToken).ConfigureAwait(false);
                // Alive before the first claim: a claim whose owner has no heartbeat is taken over.
                _workers = workers;
                await BeatAsync(cancellationToken).ConfigureAwait(false);
                _heartbeats = Task.Run(BeatForeverAsync, CancellationToken.None);
                _claims = claims;
            }

            return (_claims, _workers);
        }
        finally
        {
            _bind.Release();
        }
    }

    /// <summary>Beats now when the last beat is old enough that others may soon take this worker for gone (a stalled loop, a long outage).</summary>
    private ValueTask StayAliveAsync(CancellationToken cancellationToken) =>
        _time.GetElapsedTime(Volatile.Read(ref _lastBeat)) > _options.WorkerTimeout - _options.HeartbeatInterval
            ? BeatAsync(cancellationToken)
            : ValueTask.CompletedTask;

    private async ValueTask BeatAsync(CancellationToken cancellationToken)
    {
        var workers = _workers!;
        await _beatRetry.ExecuteAsync(
            async (state, token) => await state.workers.PutAsync(state.Instance, state._workerId, cancellationToken: token).ConfigureAwait(false),
            (workers, Instance, _workerId),
            cancellationToken).ConfigureAwait(false);
        Volatile.Write(ref _lastBeat, _time.GetTimestamp());
        if (Interlocked.Exchange(ref _beatFailing, 0) == 1)
        {
            Log.HeartbeatRecovered(_logger, _options.WorkersBucket);
        }
    }

    private async Task BeatForeverAsync()
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                await BeatOnceAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    private async Task BeatOnceAsync()
    {
        try
        {
            await BeatAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
        {
            // Said once per outage; the loop goes on.
            if (Interlocked.Exchange(ref _beatFailing, 1) == 0)
            {
                Log.HeartbeatFailed(_logger, ex, _options.WorkersBucket, _options.WorkerTimeout);
            }
        }
    }

    // Back from a server restart or a network drop: beat at once, not up to an interval later,
    // since a long outage may have let this worker's heartbeat expire.
    private ValueTask OnConnectionOpened(object? sender, NatsEventArgs args)
    {
        if (_workers is not null && Volatile.Read(ref _disposed) == 0)
        {
            _ = Task.Run(BeatOnceAsync);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A claim granted here: the record's revision, the stream sequence it was claimed with, and the
    /// deliveries that hold it (usually one; two when a redelivery of the same message raced the
    /// first claim and the engine took it for a duplicate afterwards).
    /// </summary>
    private sealed class Grant(ulong revision, ulong? sequence, Command holder)
    {
        private readonly List<Command> _holders = [holder];
        private readonly TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _ended;

        public ulong Revision { get; } = revision;

        public ulong? Sequence { get; } = sequence;

        /// <summary>Completes once the grant has ended and its outcome or release is written (or given up on).</summary>
        public Task Written => _written.Task;

        public void EndWrite() => _written.TrySetResult();

        /// <summary>Adds a holder; false when the grant has ended meanwhile.</summary>
        public bool TryJoin(Command command)
        {
            lock (_holders)
            {
                if (!_ended)
                {
                    _holders.Add(command);
                }

                return !_ended;
            }
        }

        /// <summary>
        /// Whether <paramref name="command"/>'s delivery ends the grant now: it holds it, and it
        /// reports an outcome, or releases it as its last holder (a release while another holder
        /// may run the command would free it for a second run).
        /// </summary>
        public bool TryEnd(Command command, bool release)
        {
            lock (_holders)
            {
                var index = _holders.FindIndex(held => ReferenceEquals(held, command));
                if (_ended || index < 0)
                {
                    return false;
                }

                _holders.RemoveAt(index);
                _ended = !release || _holders.Count == 0;
                return _ended;
            }
        }
    }
}
