using System.Runtime.InteropServices;
using Npgsql;
using NpgsqlTypes;

namespace Pipeline.Storage.Postgres;

/// <summary>
/// <see cref="IQueuedWorkStore"/> on PostgreSQL: many workers on many machines share one database as
/// the claim authority. Open with <see cref="OpenAsync"/>; the schema is created or checked then.
/// </summary>
/// <remarks>
/// <para><b>Locking.</b> Every change to a session's batches first locks the session's row (see
/// <see cref="PostgresSchema"/>), then changes the batches, then brings the session row up to date,
/// in one transaction. A claim across sessions locks ready session rows with
/// <c>FOR UPDATE SKIP LOCKED</c>: a session another transaction holds is passed over, and one that
/// changed since the claim's snapshot is re-checked on its newest version (READ COMMITTED's
/// re-check) and then left for the next claim, so two claimers never both win a session and no
/// claim is built from a stale view of its batches. Fences come from a sequence taken under
/// the session's lock, so a session's successive claims have growing fences.</para>
/// <para><b>Time.</b> Enqueue times, availability and lease expiries are the database's
/// <c>clock_timestamp()</c>; the store reads no clock of the worker's, so a worker whose clock is
/// off neither steals nor loses a lease.</para>
/// <para><b>Round trips.</b> Every call is one round trip: one statement, or statements sent
/// together in one implicit transaction. Enqueue and settle take any number of batches in it
/// (arrays, <c>unnest</c>); a claim across sessions takes many sessions in one statement. Each returns once committed, and so durable
/// while the server keeps <c>synchronous_commit</c> on (its default).</para>
/// <para><b>Failures.</b> A call that cannot reach the server, or that the server ends (restart,
/// shutdown, timeout, deadlock), throws; <see cref="IsTransient"/> says which to retry. A retry is
/// safe but can see its own earlier effect when the first attempt committed and only its reply was
/// lost: an enqueue without an idempotency key is stored twice, a settle reports
/// <see cref="SettleStatus.FencedOut"/>, a claim's batches stay held until its lease lapses.</para>
/// </remarks>
public sealed class PostgresQueuedWorkStore : IQueuedWorkStore
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresStoreSql _sql;

    private PostgresQueuedWorkStore(NpgsqlDataSource dataSource, PostgresStoreSql sql)
    {
        _dataSource = dataSource;
        _sql = sql;
    }

    /// <summary>
    /// Connects, creates the schema when missing (or migrates an older one) and returns the store.
    /// Throws <see cref="StoreSchemaException"/> when the database holds a schema newer than this
    /// code, and a transient exception (<see cref="IsTransient"/>) when the server cannot be reached.
    /// </summary>
    public static async Task<PostgresQueuedWorkStore> OpenAsync(PostgresStoreOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var builder = new NpgsqlDataSourceBuilder(options.ConnectionString);
        builder.ConnectionStringBuilder.CommandTimeout = (int)Math.Ceiling(options.CommandTimeout.TotalSeconds);
        if (builder.ConnectionStringBuilder.MaxAutoPrepare == 0)
        {
            // The same few statements run again and again: prepared once per connection, planned once.
            builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
        }

        // The store leaves no session state behind (no SET, temp table, LISTEN or session lock), so
        // a pooled connection needs no reset before its next use.
        builder.ConnectionStringBuilder.NoResetOnClose = true;
        var dataSource = builder.Build();
        try
        {
            await PostgresSchema.EnsureAsync(dataSource, options.Schema, cancellationToken).ConfigureAwait(false);
            return new PostgresQueuedWorkStore(dataSource, new PostgresStoreSql(options.Schema));
        }
        catch
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Transient: the server could not be reached or went away, is restarting, timed out, or chose
    /// this transaction as a deadlock victim (the full list: <see cref="PostgresErrors"/>).
    /// </summary>
    public bool IsTransient(Exception exception) => PostgresErrors.IsTransient(exception);

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(drafts);
        if (drafts.Count == 0)
        {
            return [];
        }

        var sessions = new string[drafts.Count];
        var distinctSessions = new SortedSet<string>(StringComparer.Ordinal);
        var payloads = new byte[drafts.Count][];
        var keys = new string?[drafts.Count];
        var availableAt = new DateTime?[drafts.Count];
        for (var i = 0; i < drafts.Count; i++)
        {
            var draft = drafts[i] ?? throw new ArgumentException($"Draft {i} is null.", nameof(drafts));
            sessions[i] = RequireSession(draft.SessionId, nameof(drafts));
            distinctSessions.Add(sessions[i]);
            payloads[i] = AsArray(draft.Payload);
            keys[i] = draft.IdempotencyKey;
            availableAt[i] = draft.AvailableAt?.UtcDateTime;
        }

        var results = new EnqueueResult?[drafts.Count];
        await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            // Each session once, in one order (the locks' order: two enqueuers cannot deadlock).
            string[] touched = [.. distinctSessions];
            batch.BatchCommands.Add(Command(_sql.LockSessionsForEnqueue, Parameter(touched)));
            batch.BatchCommands.Add(Command(
                _sql.Enqueue,
                Parameter(sessions),
                Parameter(payloads),
                Parameter(keys, NpgsqlDbType.Array | NpgsqlDbType.Text),
                Parameter(availableAt, NpgsqlDbType.Array | NpgsqlDbType.TimestampTz)));
            batch.BatchCommands.Add(Command(_sql.SetHeadsAfterEnqueue, Parameter(touched)));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await SkipToRowsAsync(reader, 0, cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var index = (int)reader.GetInt64(0) - 1;
                var created = reader.GetBoolean(1);
                var draft = drafts[index];
                var batchResult = created
                    ? new QueuedBatch
                    {
                        BatchId = BatchIds.Format(reader.GetInt64(2)),
                        SessionId = draft.SessionId,
                        Sequence = reader.GetInt64(2),
                        Payload = draft.Payload,
                        IdempotencyKey = draft.IdempotencyKey,
                        EnqueuedAt = reader.GetFieldValue<DateTimeOffset>(6),
                        AvailableAt = reader.GetFieldValue<DateTimeOffset>(7),
                        Attempts = 0,
                        State = QueuedBatchState.Pending,
                    }
                    : BatchRows.Read(reader, 2);
                results[index] = new EnqueueResult(batchResult, created);
            }

            await cleanup.CloseAsync().ConfigureAwait(false); // the commit
            return true;
        }).ConfigureAwait(false);

        await ResolveUnansweredAsync(drafts, results, cancellationToken).ConfigureAwait(false);
        return Array.ConvertAll(results, result => result!.Value);
    }

    /// <inheritdoc/>
    public async ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken)
    {
        RequireSession(sessionId, nameof(sessionId));
        RequireLease(lease);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatches, 1);
        var claims = await ClaimOneSessionAsync(sessionId, lease, maxBatches, ids: null, cancellationToken).ConfigureAwait(false);
        return claims.Count == 0 ? null : claims[0];
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
    {
        RequireLease(lease);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSessions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchesPerSession, 1);
        return await GuardAsync(async () =>
        {
            await using var claim = _dataSource.CreateCommand(_sql.ClaimReady);
            AddClaimParameters(claim.Parameters, Parameter(maxSessions), lease, maxBatchesPerSession, ids: null);
            var reader = await claim.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            var claims = await ReadClaimsAsync(reader, lease.Owner, cancellationToken).ConfigureAwait(false);
            await cleanup.CloseAsync().ConfigureAwait(false); // the commit: a claim is returned only once durable
            return claims;
        }).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken)
    {
        RequireSession(sessionId, nameof(sessionId));
        ArgumentNullException.ThrowIfNull(batchIds);
        RequireLease(lease);
        if (batchIds.Count == 0)
        {
            throw new ArgumentException("Name at least one batch to claim.", nameof(batchIds));
        }

        var sequences = new long[batchIds.Count];
        for (var i = 0; i < batchIds.Count; i++)
        {
            if (!BatchIds.TryParse(batchIds[i], out sequences[i]))
            {
                return null; // No batch of this store has that id, so they cannot be the next ready ones.
            }
        }

        var claims = await ClaimOneSessionAsync(sessionId, lease, sequences.Length, sequences, cancellationToken).ConfigureAwait(false);
        return claims.Count == 0 ? null : claims[0];
    }

    /// <inheritdoc/>
    public async ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeToLive, TimeSpan.Zero);
        return await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            batch.BatchCommands.Add(Command(_sql.LockSessionOfFence, Parameter(fence)));
            batch.BatchCommands.Add(Command(_sql.Renew, Parameter(fence), Parameter(timeToLive)));
            batch.BatchCommands.Add(Command(_sql.RefreshSessionOfFence, Parameter(fence)));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await SkipToRowsAsync(reader, 1, cancellationToken).ConfigureAwait(false);
            DateTimeOffset? expiry = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) && !reader.IsDBNull(0)
                ? reader.GetFieldValue<DateTimeOffset>(0)
                : null;
            await cleanup.CloseAsync().ConfigureAwait(false); // the commit: returns once durable
            return expiry;
        }).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settlements);
        var statuses = new SettleStatus[settlements.Count];
        Array.Fill(statuses, SettleStatus.FencedOut);

        // Ids no batch can have are fenced out without a word to the server.
        var positions = new List<int>(settlements.Count);
        for (var i = 0; i < settlements.Count; i++)
        {
            if (BatchIds.TryParse(settlements[i].BatchId, out _))
            {
                positions.Add(i);
            }
        }

        if (positions.Count == 0)
        {
            return statuses;
        }

        var sequences = new long[positions.Count];
        var fences = new long[positions.Count];
        var kinds = new short[positions.Count];
        var delays = new TimeSpan[positions.Count];
        var reasons = new string?[positions.Count];
        for (var j = 0; j < positions.Count; j++)
        {
            var settlement = settlements[positions[j]];
            BatchIds.TryParse(settlement.BatchId, out sequences[j]);
            fences[j] = settlement.Fence;
            kinds[j] = settlement.Kind switch
            {
                SettleKind.Complete => 0,
                SettleKind.Abandon => 1,
                SettleKind.DeadLetter => 2,
                _ => throw new ArgumentOutOfRangeException(nameof(settlements), settlement.Kind, "Unknown settle kind."),
            };
            delays[j] = settlement.Delay;
            reasons[j] = settlement.Reason;
        }

        await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            long[] claims = [.. fences.Distinct()];
            batch.BatchCommands.Add(Command(_sql.LockSessionsOfFences, Parameter(claims)));
            batch.BatchCommands.Add(Command(
                _sql.Settle,
                Parameter(sequences),
                Parameter(fences),
                Parameter(kinds),
                Parameter(delays),
                Parameter(reasons, NpgsqlDbType.Array | NpgsqlDbType.Text)));
            batch.BatchCommands.Add(Command(_sql.RefreshSessionsOfFences, Parameter(claims)));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await SkipToRowsAsync(reader, 1, cancellationToken).ConfigureAwait(false);
            var settled = new List<int>(positions.Count);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                settled.Add((int)reader.GetInt64(0) - 1);
            }

            await cleanup.CloseAsync().ConfigureAwait(false); // the commit: nothing is reported settled before it is durable
            foreach (var j in settled)
            {
                statuses[positions[j]] = SettleStatus.Settled;
            }

            return true;
        }).ConfigureAwait(false);
        return statuses;
    }

    /// <inheritdoc/>
    public async ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken)
    {
        RequireSession(sessionId, nameof(sessionId));
        if (!BatchIds.TryParse(batchId, out var sequence))
        {
            return null;
        }

        return await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            batch.BatchCommands.Add(Command(_sql.LockSession, Parameter(sessionId)));
            batch.BatchCommands.Add(Command(_sql.Cancel, Parameter(sessionId), Parameter(sequence)));
            batch.BatchCommands.Add(Command(_sql.RefreshSession, Parameter(sessionId)));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await SkipToRowsAsync(reader, 1, cancellationToken).ConfigureAwait(false);
            var removed = await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? BatchRows.Read(reader) : null;
            await cleanup.CloseAsync().ConfigureAwait(false);
            return removed;
        }).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken) =>
        ListAsync(_sql.List, sessionId, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken) =>
        ListAsync(_sql.ListPending, sessionId, cancellationToken);

    /// <inheritdoc/>
    public async ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxListed);
        return await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            batch.BatchCommands.Add(Command(_sql.SummaryCounts));
            batch.BatchCommands.Add(Command(_sql.SummaryLiveClaims, Parameter(maxListed)));
            batch.BatchCommands.Add(Command(_sql.SummaryDeadLetters, Parameter(maxListed)));
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var pending = reader.GetInt64(0);
            var claimed = reader.GetInt64(1);
            var completed = reader.GetInt64(2);
            var dead = reader.GetInt64(3);
            TimeSpan? oldest = reader.IsDBNull(4) ? null : reader.GetFieldValue<TimeSpan>(4);

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            var live = new List<LiveClaimSummary>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                live.Add(new LiveClaimSummary(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetFieldValue<DateTimeOffset>(3), reader.GetInt32(4)));
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            var deadLetters = new List<QueuedBatch>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                deadLetters.Add(BatchRows.Read(reader));
            }

            await cleanup.CloseAsync().ConfigureAwait(false);
            return new QueueSummary
            {
                Pending = pending,
                Claimed = claimed,
                Completed = completed,
                DeadLettered = dead,
                OldestPendingAge = oldest,
                LiveClaims = live,
                DeadLetters = deadLetters,
            };
        }).ConfigureAwait(false);
    }

    /// <summary>Closes the pool's connections; batches and claims stay in the database.</summary>
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    private async Task<IReadOnlyList<QueuedWorkClaim>> ClaimOneSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, long[]? ids, CancellationToken cancellationToken) =>
        await GuardAsync(async () =>
        {
            await using var batch = _dataSource.CreateBatch();
            batch.BatchCommands.Add(Command(_sql.LockSession, Parameter(sessionId)));
            var claim = Command(_sql.ClaimSession);
            AddClaimParameters(claim.Parameters, Parameter(sessionId), lease, maxBatches, ids);
            batch.BatchCommands.Add(claim);
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            await SkipToRowsAsync(reader, 1, cancellationToken).ConfigureAwait(false);
            var claims = await ReadClaimsAsync(reader, lease.Owner, cancellationToken).ConfigureAwait(false);
            await cleanup.CloseAsync().ConfigureAwait(false); // the commit
            return claims;
        }).ConfigureAwait(false);

    private async ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sql, string sessionId, CancellationToken cancellationToken)
    {
        RequireSession(sessionId, nameof(sessionId));
        return await GuardAsync(async () =>
        {
            await using var command = _dataSource.CreateCommand(sql);
            command.Parameters.Add(Parameter(sessionId));
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            var batches = new List<QueuedBatch>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                batches.Add(BatchRows.Read(reader));
            }

            await cleanup.CloseAsync().ConfigureAwait(false);
            return (IReadOnlyList<QueuedBatch>)batches;
        }).ConfigureAwait(false);
    }

    // Drafts the enqueue statement could not answer: a key repeated within the call (the first
    // occurrence's batch), or a key another transaction inserted after the statement's snapshot
    // (read again now that it has committed).
    private async Task ResolveUnansweredAsync(IReadOnlyList<QueuedBatchDraft> drafts, EnqueueResult?[] results, CancellationToken cancellationToken)
    {
        Dictionary<string, QueuedBatch>? firstByKey = null;
        List<string>? missing = null;
        for (var i = 0; i < drafts.Count; i++)
        {
            var key = drafts[i].IdempotencyKey;
            if (key is null)
            {
                continue;
            }

            firstByKey ??= new Dictionary<string, QueuedBatch>(StringComparer.Ordinal);
            if (results[i] is { } answered)
            {
                firstByKey.TryAdd(key, answered.Batch);
            }
            else if (firstByKey.TryGetValue(key, out var first))
            {
                results[i] = new EnqueueResult(first, false);
            }
            else
            {
                (missing ??= []).Add(key);
            }
        }

        if (missing is null)
        {
            return;
        }

        var stored = await GuardAsync(async () =>
        {
            await using var command = _dataSource.CreateCommand(_sql.ByIdempotencyKeys);
            command.Parameters.Add(Parameter(missing.ToArray()));
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using var cleanup = new ReaderCleanup(reader);
            var byKey = new Dictionary<string, QueuedBatch>(StringComparer.Ordinal);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                byKey[reader.GetString(0)] = BatchRows.Read(reader, 1);
            }

            await cleanup.CloseAsync().ConfigureAwait(false);
            return byKey;
        }).ConfigureAwait(false);

        for (var i = 0; i < drafts.Count; i++)
        {
            if (results[i] is null)
            {
                var key = drafts[i].IdempotencyKey!;
                results[i] = new EnqueueResult(stored.TryGetValue(key, out var batch) ? batch : throw new InvalidOperationException($"Idempotency key '{key}' was neither inserted nor found."), false);
            }
        }
    }

    // Rows of a claim statement: the claim's fence and expiry, then the batch (sequence, session,
    // payload, key, enqueued, available, attempts), ordered by fence and sequence.
    private static async Task<IReadOnlyList<QueuedWorkClaim>> ReadClaimsAsync(NpgsqlDataReader reader, string owner, CancellationToken cancellationToken)
    {
        var claims = new List<QueuedWorkClaim>();
        List<QueuedBatch>? batches = null;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var fence = reader.GetInt64(0);
            var expiresAt = reader.GetFieldValue<DateTimeOffset>(1);
            var sequence = reader.GetInt64(2);
            var sessionId = reader.GetString(3);
            if (batches is null || claims[^1].Fence != fence)
            {
                batches = [];
                claims.Add(new QueuedWorkClaim { SessionId = sessionId, Owner = owner, Fence = fence, ExpiresAt = expiresAt, Batches = batches });
            }

            batches.Add(new QueuedBatch
            {
                BatchId = BatchIds.Format(sequence),
                SessionId = sessionId,
                Sequence = sequence,
                Payload = reader.GetFieldValue<byte[]>(4),
                IdempotencyKey = reader.IsDBNull(5) ? null : reader.GetString(5),
                EnqueuedAt = reader.GetFieldValue<DateTimeOffset>(6),
                AvailableAt = reader.GetFieldValue<DateTimeOffset>(7),
                Attempts = reader.GetInt32(8),
                State = QueuedBatchState.Claimed,
                Lease = new ClaimLease(owner, fence, expiresAt),
            });
        }

        // Oldest head first, as the sessions were picked.
        claims.Sort(static (a, b) => a.Batches[0].Sequence.CompareTo(b.Batches[0].Sequence));
        return claims;
    }

    // $1 (the sessions: how many, or which one), $2 owner, $3 batches per session, $4 time to live, $5 ids or null.
    private static void AddClaimParameters(NpgsqlParameterCollection parameters, NpgsqlParameter sessions, LeaseRequest lease, int maxBatches, long[]? ids)
    {
        parameters.Add(sessions);
        parameters.Add(Parameter(lease.Owner));
        parameters.Add(Parameter(maxBatches));
        parameters.Add(Parameter(lease.TimeToLive));
        parameters.Add(ids is null
            ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint }
            : Parameter(ids));
    }

    // Statements sent together run in one implicit transaction. Moves the reader to the result of
    // the row-returning statement after the first `earlier` ones (a lock's SELECT … FOR UPDATE
    // returns rows too), past statements that return none.
    private static async Task SkipToRowsAsync(NpgsqlDataReader reader, int earlier, CancellationToken cancellationToken)
    {
        while (reader.FieldCount == 0 && await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
        {
        }

        for (var i = 0; i < earlier; i++)
        {
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (reader.FieldCount == 0 && await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
            {
            }
        }
    }

    // A lost connection usually means the server restarted: every idle connection in the pool is
    // dead too, so they go, and the caller's retry opens a fresh one instead of meeting each corpse.
    private async Task<T> GuardAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception ex) when (PostgresErrors.IsConnectionLost(ex))
        {
            _dataSource.Clear();
            throw;
        }
    }

    private static NpgsqlBatchCommand Command(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        return command;
    }

    private static NpgsqlParameter<T> Parameter<T>(T value) => new() { TypedValue = value };

    private static NpgsqlParameter<T> Parameter<T>(T value, NpgsqlDbType type) => new() { TypedValue = value, NpgsqlDbType = type };

    private static byte[] AsArray(ReadOnlyMemory<byte> payload) =>
        MemoryMarshal.TryGetArray(payload, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : payload.ToArray();

    private static string RequireSession(string? sessionId, string parameter) =>
        string.IsNullOrEmpty(sessionId) ? throw new ArgumentException("A session id is required.", parameter) : sessionId;

    private static void RequireLease(LeaseRequest lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        if (string.IsNullOrEmpty(lease.Owner))
        {
            throw new ArgumentException("The lease needs an owner.", nameof(lease));
        }

        if (lease.TimeToLive <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(lease), lease.TimeToLive, "A lease's time to live must be positive.");
        }
    }

    /// <summary>
    /// Closes a reader exactly once. The success path closes it with <see cref="CloseAsync"/>
    /// (where the implicit transaction commits: a failure there must surface); a scope left
    /// without that (a failure while reading) disposes it quietly, since after a lost connection
    /// cleaning up fails as well and that second failure would hide the first. Never twice:
    /// Npgsql hands the same reader object to the next command on the connection, so a second
    /// dispose after the connection went back to the pool closes another caller's reader (seen as
    /// 'Received unexpected backend message DataRow' and hangs under eight racing claimers).
    /// </summary>
    private sealed class ReaderCleanup(NpgsqlDataReader reader) : IAsyncDisposable
    {
        private bool _closed;

        public ValueTask CloseAsync()
        {
            _closed = true;
            return reader.DisposeAsync();
        }

        public async ValueTask DisposeAsync()
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            try
            {
                await reader.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or InvalidOperationException or ObjectDisposedException)
            {
                // The connection is broken; the failure already in flight is the one to report.
            }
        }
    }
}
