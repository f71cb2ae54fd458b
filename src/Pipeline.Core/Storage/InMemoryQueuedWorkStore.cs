using System.Globalization;

namespace Pipeline.Storage;

/// <summary>
/// The reference <see cref="IQueuedWorkStore"/>: every rule of the contract, kept in memory under
/// one lock, on the given clock. Nothing survives the process; for tests, embedding and as the
/// behaviour the durable backends are held to (they all run the same conformance suite).
/// </summary>
/// <remarks>
/// Sequences and fences each come from one counter that only grows. Batch ids are the sequence in
/// decimal. Settled batches stay (their idempotency keys keep answering); cancelled ones go.
/// </remarks>
public sealed class InMemoryQueuedWorkStore : IQueuedWorkStore
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly Dictionary<string, Row> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Row> _byKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);

    // Sessions with unsettled batches by their head's sequence: the cross-session claim walks it oldest first.
    private readonly SortedSet<(long Head, string SessionId)> _heads = [];
    private readonly Dictionary<long, List<Row>> _claims = [];
    private readonly List<Row> _deadLetters = [];
    private long _sequence;
    private long _fence;
    private long _completed;
    private bool _disposed;

    /// <summary>Creates an empty store on <paramref name="timeProvider"/> (default: the system clock).</summary>
    public InMemoryQueuedWorkStore(TimeProvider? timeProvider = null) => _time = timeProvider ?? TimeProvider.System;

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken)
    {
        StoreArguments.CheckDrafts(drafts);
        cancellationToken.ThrowIfCancellationRequested();
        var results = new EnqueueResult[drafts.Count];
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            for (var i = 0; i < drafts.Count; i++)
            {
                var draft = drafts[i];
                if (draft.IdempotencyKey is { } key && _byKey.TryGetValue(key, out var existing))
                {
                    results[i] = new EnqueueResult(existing.Snapshot(), Created: false);
                    continue;
                }

                var sequence = ++_sequence;
                var row = new Row
                {
                    BatchId = sequence.ToString(CultureInfo.InvariantCulture),
                    SessionId = draft.SessionId,
                    Sequence = sequence,
                    Payload = draft.Payload.ToArray(),
                    IdempotencyKey = draft.IdempotencyKey,
                    EnqueuedAt = now,
                    AvailableAt = draft.AvailableAt ?? now,
                };
                _byId.Add(row.BatchId, row);
                if (row.IdempotencyKey is { } newKey)
                {
                    _byKey.Add(newKey, row);
                }

                if (!_sessions.TryGetValue(row.SessionId, out var session))
                {
                    session = new Session(row.SessionId);
                    _sessions.Add(row.SessionId, session);
                    _heads.Add((sequence, row.SessionId));
                }

                session.Unsettled.Add(sequence, row);
                results[i] = new EnqueueResult(row.Snapshot(), Created: true);
            }
        }

        return new(results);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        StoreArguments.CheckLease(lease);
        StoreArguments.CheckCount(maxBatches, nameof(maxBatches));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            return new(_sessions.TryGetValue(sessionId, out var session) && IsReady(session, now)
                ? Claim(session, ReadyRun(session, now, maxBatches), lease, now)
                : null);
        }
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
    {
        StoreArguments.CheckLease(lease);
        StoreArguments.CheckCount(maxSessions, nameof(maxSessions));
        StoreArguments.CheckCount(maxBatchesPerSession, nameof(maxBatchesPerSession));
        cancellationToken.ThrowIfCancellationRequested();
        var claims = new List<QueuedWorkClaim>();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            var ready = new List<Session>();
            foreach (var (_, sessionId) in _heads)
            {
                var session = _sessions[sessionId];
                if (IsReady(session, now))
                {
                    ready.Add(session);
                    if (ready.Count == maxSessions)
                    {
                        break;
                    }
                }
            }

            // Claimed after the walk: a claim moves no head, but the set must not change while it is enumerated.
            foreach (var session in ready)
            {
                claims.Add(Claim(session, ReadyRun(session, now, maxBatchesPerSession), lease, now));
            }
        }

        return new(claims);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        StoreArguments.CheckBatchIds(batchIds);
        StoreArguments.CheckLease(lease);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            if (!_sessions.TryGetValue(sessionId, out var session) || !IsReady(session, now))
            {
                return new((QueuedWorkClaim?)null);
            }

            var run = ReadyRun(session, now, batchIds.Count);
            if (run.Count != batchIds.Count)
            {
                return new((QueuedWorkClaim?)null);
            }

            for (var i = 0; i < run.Count; i++)
            {
                if (!string.Equals(run[i].BatchId, batchIds[i], StringComparison.Ordinal))
                {
                    return new((QueuedWorkClaim?)null);
                }
            }

            return new(Claim(session, run, lease, now));
        }
    }

    /// <inheritdoc/>
    public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        StoreArguments.CheckTimeToLive(timeToLive, nameof(timeToLive));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            if (!_claims.TryGetValue(fence, out var held) || held.Count == 0)
            {
                return new((DateTimeOffset?)null);
            }

            // A successor that took part of a lapsed claim holds the session now: two live claims of one session never.
            var session = _sessions[held[0].SessionId];
            if (session.Claimed.Any(r => r.Lease!.Fence != fence && r.Lease.ExpiresAt > now))
            {
                return new((DateTimeOffset?)null);
            }

            var expiresAt = now + timeToLive;
            foreach (var row in held)
            {
                row.Lease = row.Lease! with { ExpiresAt = expiresAt };
            }

            return new((DateTimeOffset?)expiresAt);
        }
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
    {
        StoreArguments.CheckSettlements(settlements);
        cancellationToken.ThrowIfCancellationRequested();
        var results = new SettleStatus[settlements.Count];
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            for (var i = 0; i < settlements.Count; i++)
            {
                results[i] = Settle(settlements[i], now);
            }
        }

        return new(results);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentException.ThrowIfNullOrEmpty(batchId);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            if (!_byId.TryGetValue(batchId, out var row)
                || !string.Equals(row.SessionId, sessionId, StringComparison.Ordinal)
                || row.State is QueuedBatchState.Completed or QueuedBatchState.DeadLettered
                || row.IsLive(now))
            {
                return new((QueuedBatch?)null);
            }

            var removed = row.Snapshot();
            _byId.Remove(row.BatchId);
            if (row.IdempotencyKey is { } key)
            {
                _byKey.Remove(key);
            }

            Unsettle(row);
            return new(removed);
        }
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) =>
        List(sessionId, includeLive: true, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) =>
        List(sessionId, includeLive: false, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken)
    {
        StoreArguments.CheckListed(maxListed);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            long pending = 0, claimed = 0;
            DateTimeOffset? oldestPending = null;
            foreach (var session in _sessions.Values)
            {
                foreach (var row in session.Unsettled.Values)
                {
                    if (row.IsLive(now))
                    {
                        claimed++;
                        continue;
                    }

                    pending++;
                    oldestPending = oldestPending is { } oldest && oldest <= row.EnqueuedAt ? oldest : row.EnqueuedAt;
                }
            }

            var live = _claims
                .Select(c => c.Value.Where(r => r.IsLive(now)).ToList())
                .Where(rows => rows.Count > 0)
                .Select(rows => new LiveClaimSummary(rows[0].SessionId, rows[0].Lease!.Owner, rows[0].Lease!.Fence, rows[0].Lease!.ExpiresAt, rows.Count))
                .OrderBy(c => c.ExpiresAt)
                .ThenBy(c => c.Fence)
                .Take(maxListed)
                .ToList();

            return new(new QueueSummary
            {
                Pending = pending,
                Claimed = claimed,
                Completed = _completed,
                DeadLettered = _deadLetters.Count,
                OldestPendingAge = now - oldestPending,
                LiveClaims = live,
                DeadLetters = [.. Enumerable.Reverse(_deadLetters).Take(maxListed).Select(r => r.Snapshot())],
            });
        }
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        return ValueTask.CompletedTask;
    }

    // Ready: its head is available and none of its batches is held under a live lease.
    private static bool IsReady(Session session, DateTimeOffset now) =>
        session.Unsettled.Count > 0
        && session.Unsettled.First().Value.AvailableAt <= now
        && !session.Claimed.Any(r => r.IsLive(now));

    // The available batches from the head on, in order, stopping at the first that is not: never skipping one.
    private static List<Row> ReadyRun(Session session, DateTimeOffset now, int max)
    {
        var run = new List<Row>(Math.Min(max, session.Unsettled.Count));
        foreach (var row in session.Unsettled.Values)
        {
            if (run.Count == max || row.AvailableAt > now)
            {
                break;
            }

            run.Add(row);
        }

        return run;
    }

    private QueuedWorkClaim Claim(Session session, List<Row> run, LeaseRequest lease, DateTimeOffset now)
    {
        var fence = ++_fence;
        var claimLease = new ClaimLease(lease.Owner, fence, now + lease.TimeToLive);
        var batches = new QueuedBatch[run.Count];
        for (var i = 0; i < run.Count; i++)
        {
            var row = run[i];
            if (row.State == QueuedBatchState.Claimed)
            {
                row.Attempts++; // its last claim lapsed: that delivery ended without a completion
            }

            Release(row);
            row.State = QueuedBatchState.Claimed;
            row.Lease = claimLease;
            session.Claimed.Add(row);
            batches[i] = row.Snapshot();
        }

        _claims.Add(fence, run);
        return new QueuedWorkClaim { SessionId = session.Id, Owner = lease.Owner, Fence = fence, ExpiresAt = claimLease.ExpiresAt, Batches = batches };
    }

    private SettleStatus Settle(BatchSettlement settlement, DateTimeOffset now)
    {
        if (!_byId.TryGetValue(settlement.BatchId, out var row) || row.State != QueuedBatchState.Claimed || row.Lease!.Fence != settlement.Fence)
        {
            return SettleStatus.FencedOut;
        }

        switch (settlement.Kind)
        {
            case SettleKind.Complete:
                Unsettle(row);
                row.State = QueuedBatchState.Completed;
                _completed++;
                break;
            case SettleKind.Abandon:
                Release(row);
                row.State = QueuedBatchState.Pending;
                row.Lease = null;
                row.Attempts++;
                row.AvailableAt = now + settlement.Delay;
                break;
            case SettleKind.DeadLetter:
                Unsettle(row);
                row.State = QueuedBatchState.DeadLettered;
                row.DeadLetterReason = settlement.Reason;
                _deadLetters.Add(row);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(settlement), settlement.Kind, "Unknown settle kind.");
        }

        return SettleStatus.Settled;
    }

    // Takes a row out of the claim that holds it (if any), so that claim's fence no longer reaches it.
    private void Release(Row row)
    {
        if (row.State != QueuedBatchState.Claimed)
        {
            return;
        }

        _sessions[row.SessionId].Claimed.Remove(row);
        var fence = row.Lease!.Fence;
        var held = _claims[fence];
        held.Remove(row);
        if (held.Count == 0)
        {
            _claims.Remove(fence);
        }
    }

    // Takes a row out of its session for good (settled or cancelled), moving the session's head.
    private void Unsettle(Row row)
    {
        Release(row);
        var session = _sessions[row.SessionId];
        var oldHead = session.Unsettled.First().Key;
        session.Unsettled.Remove(row.Sequence);
        if (session.Unsettled.Count == 0)
        {
            _heads.Remove((oldHead, session.Id));
            _sessions.Remove(session.Id);
        }
        else if (session.Unsettled.First().Key != oldHead)
        {
            _heads.Remove((oldHead, session.Id));
            _heads.Add((session.Unsettled.First().Key, session.Id));
        }
    }

    private ValueTask<IReadOnlyList<QueuedBatch>> List(string sessionId, bool includeLive, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ThrowIfDisposed();
            var now = _time.GetUtcNow();
            IReadOnlyList<QueuedBatch> listed = _sessions.TryGetValue(sessionId, out var session)
                ? [.. session.Unsettled.Values.Where(r => includeLive || !r.IsLive(now)).Select(r => r.Snapshot())]
                : [];
            return new(listed);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private sealed class Session(string id)
    {
        public string Id { get; } = id;

        public SortedDictionary<long, Row> Unsettled { get; } = [];

        public HashSet<Row> Claimed { get; } = [];
    }

    private sealed class Row
    {
        public required string BatchId { get; init; }

        public required string SessionId { get; init; }

        public required long Sequence { get; init; }

        public required byte[] Payload { get; init; }

        public string? IdempotencyKey { get; init; }

        public required DateTimeOffset EnqueuedAt { get; init; }

        public required DateTimeOffset AvailableAt { get; set; }

        public int Attempts { get; set; }

        public QueuedBatchState State { get; set; }

        public ClaimLease? Lease { get; set; }

        public string? DeadLetterReason { get; set; }

        public bool IsLive(DateTimeOffset now) => State == QueuedBatchState.Claimed && Lease!.ExpiresAt > now;

        public QueuedBatch Snapshot() => new()
        {
            BatchId = BatchId,
            SessionId = SessionId,
            Sequence = Sequence,
            Payload = Payload,
            IdempotencyKey = IdempotencyKey,
            EnqueuedAt = EnqueuedAt,
            AvailableAt = AvailableAt,
            Attempts = Attempts,
            State = State,
            Lease = Lease,
            DeadLetterReason = DeadLetterReason,
        };
    }
}
