using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Pipeline.Storage.Sqlite;

/// <summary>
/// The queued-work store on a SQLite file, the embedded default: no server to run, and what it
/// said was done survives a crash. Open it with <see cref="OpenAsync"/>.
/// </summary>
/// <remarks>
/// <para>WAL journal; one writer connection on which every write runs, concurrent calls grouped
/// into one <c>BEGIN IMMEDIATE</c> transaction (<see cref="SqliteWriter"/>); reads (list, summary)
/// on their own connections, which WAL lets run beside the writer. Another process may open the
/// same file: its writes wait for the file's write lock up to <see cref="SqliteStoreOptions.BusyTimeout"/>,
/// and since every read-then-write holds that lock, two processes never claim the same batch.</para>
/// <para>Leases and availability run on the injected clock. Processes sharing a file should share a
/// clock too (the same machine's): a lease is only as good as the clocks that read it.</para>
/// <para>A busy file is a transient error (<see cref="IsTransient"/>); a file that cannot be used
/// (read-only, the disk full, not a database) is a <see cref="SqliteStoreException"/> naming it.</para>
/// </remarks>
public sealed class SqliteQueuedWorkStore : IQueuedWorkStore
{
    private readonly string _path;
    private readonly string _connectionString;
    private readonly TimeSpan _busyTimeout;
    private readonly TimeProvider _time;
    private readonly SqlCommands _writerSql;
    private readonly SqliteWriter _writer;
    private readonly SqliteCheckpointer _checkpointer;
    private readonly ConcurrentBag<SqlCommands> _readers = [];
    private int _disposed;

    private SqliteQueuedWorkStore(string path, string connectionString, TimeSpan busyTimeout, TimeProvider time, SqlCommands writerSql, int maxCallsPerTransaction)
    {
        _path = path;
        _connectionString = connectionString;
        _busyTimeout = busyTimeout;
        _time = time;
        _writerSql = writerSql;
        _checkpointer = new SqliteCheckpointer(OpenReader, Close);
        _writer = new SqliteWriter(writerSql, path, maxCallsPerTransaction, _checkpointer);
    }

    /// <summary>The database file, as a full path.</summary>
    public string Path => _path;

    /// <summary>
    /// Opens the store at <see cref="SqliteStoreOptions.Path"/>, creating the file and its schema when
    /// missing. A file whose schema is newer than this code is refused untouched
    /// (<see cref="StoreSchemaException"/>); a file that cannot be used is a <see cref="SqliteStoreException"/>
    /// naming it and the cause.
    /// </summary>
    /// <param name="options">Where and how; validated here.</param>
    /// <param name="timeProvider">The store's clock for leases and availability; the system clock when null.</param>
    /// <param name="cancellationToken">Cancels the open (waiting for another process's lock included).</param>
    public static async Task<SqliteQueuedWorkStore> OpenAsync(SqliteStoreOptions options, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var path = System.IO.Path.GetFullPath(options.Path);
        CheckFile(path);

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = (int)Math.Ceiling(Math.Max(options.BusyTimeout.TotalSeconds, 1)),
        }.ToString();

        // Opening and creating the schema blocks on the file (and on another process's lock): off the caller's thread.
        var writer = await Task.Run(() => OpenWriter(path, connectionString, options), cancellationToken).ConfigureAwait(false);
        return new SqliteQueuedWorkStore(path, connectionString, options.BusyTimeout, timeProvider ?? TimeProvider.System, writer, options.MaxCallsPerTransaction);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<EnqueueResult>> EnqueueAsync(IReadOnlyList<QueuedBatchDraft> drafts, CancellationToken cancellationToken)
    {
        StoreArguments.CheckDrafts(drafts);
        return Write<IReadOnlyList<EnqueueResult>>(sql => SqliteWrites.Enqueue(sql, drafts, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedWorkClaim?> ClaimSessionAsync(string sessionId, LeaseRequest lease, int maxBatches, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        StoreArguments.CheckLease(lease);
        StoreArguments.CheckCount(maxBatches, nameof(maxBatches));
        return Write(sql => SqliteWrites.ClaimSession(sql, sessionId, lease, maxBatches, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedWorkClaim>> ClaimReadyAsync(LeaseRequest lease, int maxSessions, int maxBatchesPerSession, CancellationToken cancellationToken)
    {
        StoreArguments.CheckLease(lease);
        StoreArguments.CheckCount(maxSessions, nameof(maxSessions));
        StoreArguments.CheckCount(maxBatchesPerSession, nameof(maxBatchesPerSession));
        return Write<IReadOnlyList<QueuedWorkClaim>>(sql => SqliteWrites.ClaimReady(sql, lease, maxSessions, maxBatchesPerSession, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedWorkClaim?> ClaimByIdsAsync(string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        StoreArguments.CheckBatchIds(batchIds);
        StoreArguments.CheckLease(lease);
        var ids = batchIds.ToArray();
        return Write(sql => SqliteWrites.ClaimByIds(sql, sessionId, ids, lease, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<DateTimeOffset?> RenewAsync(long fence, TimeSpan timeToLive, CancellationToken cancellationToken)
    {
        StoreArguments.CheckTimeToLive(timeToLive, nameof(timeToLive));
        return Write(sql => SqliteWrites.Renew(sql, fence, timeToLive, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<SettleStatus>> SettleAsync(IReadOnlyList<BatchSettlement> settlements, CancellationToken cancellationToken)
    {
        StoreArguments.CheckSettlements(settlements);
        var copy = settlements.ToArray();
        return Write<IReadOnlyList<SettleStatus>>(sql => SqliteWrites.Settle(sql, copy, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<QueuedBatch?> CancelAsync(string sessionId, string batchId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentException.ThrowIfNullOrEmpty(batchId);
        return Write(sql => SqliteWrites.Cancel(sql, sessionId, batchId, Now()), cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListAsync(string sessionId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        return ReadAsync<IReadOnlyList<QueuedBatch>>(
            sql =>
            {
                using var rows = sql.Read($"SELECT {BatchRows.Columns} FROM batches WHERE session_id = $session AND state < 2 ORDER BY seq", ("$session", sessionId));
                return BatchRows.ReadAll(rows);
            },
            cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<QueuedBatch>> ListPendingAsync(string sessionId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        return ReadAsync<IReadOnlyList<QueuedBatch>>(
            sql =>
            {
                using var rows = sql.Read(
                    $"SELECT {BatchRows.Columns} FROM batches WHERE session_id = $session AND state < 2 AND NOT (state = 1 AND expires_at > $now) ORDER BY seq",
                    ("$session", sessionId),
                    ("$now", Now().UtcTicks));
                return BatchRows.ReadAll(rows);
            },
            cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<QueueSummary> SummarizeAsync(int maxListed, CancellationToken cancellationToken)
    {
        StoreArguments.CheckListed(maxListed);
        return ReadAsync(sql => Summarize(sql, maxListed, Now()), cancellationToken);
    }

    /// <summary>A busy file (another process holds its lock past the busy timeout) is worth retrying; nothing else is.</summary>
    public bool IsTransient(Exception exception) => SqliteErrors.IsTransient(exception);

    /// <summary>Lets the writes already asked for finish, then closes every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _writer.DisposeAsync().ConfigureAwait(false);
        await _checkpointer.DisposeAsync().ConfigureAwait(false);
        Close(_writerSql);
        while (_readers.TryTake(out var reader))
        {
            Close(reader);
        }
    }

    // Refuses before SQLite would, with a cause SQLite's own errors do not give.
    private static void CheckFile(string path)
    {
        if (Directory.Exists(path))
        {
            throw new SqliteStoreException(path, "it is a directory, not a file");
        }

        if (FileKind.Refusal(path) is { } refusal)
        {
            throw new SqliteStoreException(path, refusal);
        }

        var folder = System.IO.Path.GetDirectoryName(path);
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new SqliteStoreException(path, $"its folder '{folder}' does not exist");
        }

        // Root may write a file marked read-only; the mark is what someone meant, so it is kept.
        if (File.Exists(path) && !OperatingSystem.IsWindows()
            && (File.GetUnixFileMode(path) & (UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0)
        {
            throw new SqliteStoreException(path, "the file is read-only");
        }

        if (File.Exists(path) && (File.GetAttributes(path) & FileAttributes.ReadOnly) != 0)
        {
            throw new SqliteStoreException(path, "the file is read-only");
        }
    }

    private static SqlCommands OpenWriter(string path, string connectionString, SqliteStoreOptions options)
    {
        var connection = new SqliteConnection(connectionString);
        var sql = new SqlCommands(connection);
        try
        {
            connection.Open();
            sql.Execute($"PRAGMA busy_timeout = {(long)options.BusyTimeout.TotalMilliseconds}");

            // Read before anything writes: a newer file is left exactly as it was.
            var found = Convert.ToInt32(sql.Scalar("PRAGMA user_version"), CultureInfo.InvariantCulture);
            if (found > SqliteSchema.Version)
            {
                throw new StoreSchemaException($"SQLite store '{path}'", found, SqliteSchema.Version);
            }

            if (found == 0 && sql.Scalar("SELECT count(*) FROM sqlite_schema") is long tables && tables > 0)
            {
                throw new SqliteStoreException(path, "it is a SQLite database of something else (it has tables but no Pipeline schema version)");
            }

            var mode = (string?)sql.Scalar("PRAGMA journal_mode = WAL");
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new SqliteStoreException(path, $"it could not be switched to WAL mode (it stayed '{mode}')");
            }

            sql.Execute(options.Durability == SqliteDurability.Full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
            Tune(sql);
            CreateSchema(path, sql);
            return sql;
        }
        catch (Exception error)
        {
            Close(sql);
            throw error is StoreSchemaException or SqliteStoreException ? error : SqliteErrors.Describe(path, error);
        }
    }

    // A page cache that holds a busy queue's working set, reads through a memory map, and no
    // connection folding the WAL back into the file as it commits or reads: SqliteCheckpointer does
    // that on its own connection, so the writer never waits for it.
    private static void Tune(SqlCommands sql)
    {
        sql.Execute("PRAGMA cache_size = -65536");
        sql.Execute("PRAGMA mmap_size = 268435456");
        sql.Execute("PRAGMA temp_store = MEMORY");
        sql.Execute("PRAGMA wal_autocheckpoint = 0");
        sql.Execute("PRAGMA journal_size_limit = 67108864"); // a WAL grown by a burst is cut back to 64 MiB once folded in
    }

    private static void CreateSchema(string path, SqlCommands sql)
    {
        sql.Execute("BEGIN IMMEDIATE");
        try
        {
            // Again under the write lock: another process may have created (or upgraded) it meanwhile.
            var found = Convert.ToInt32(sql.Scalar("PRAGMA user_version"), CultureInfo.InvariantCulture);
            if (found > SqliteSchema.Version)
            {
                throw new StoreSchemaException($"SQLite store '{path}'", found, SqliteSchema.Version);
            }

            if (found == 0)
            {
                if (sql.Scalar("SELECT count(*) FROM sqlite_schema") is long tables && tables > 0)
                {
                    throw new SqliteStoreException(path, "it is a SQLite database of something else (it has tables but no Pipeline schema version)");
                }

                foreach (var statement in SqliteSchema.CreateVersion1)
                {
                    sql.Execute(statement);
                }
            }

            if (found < 2)
            {
                foreach (var statement in SqliteSchema.MigrateToVersion2)
                {
                    sql.Execute(statement);
                }
            }

            if (found < SqliteSchema.Version)
            {
                sql.Execute($"PRAGMA user_version = {SqliteSchema.Version}");
            }

            sql.Execute("COMMIT");
        }
        catch
        {
            if (SQLitePCL.raw.sqlite3_get_autocommit(sql.Connection.Handle) == 0)
            {
                sql.Execute("ROLLBACK");
            }

            throw;
        }
    }

    private static void Close(SqlCommands sql)
    {
        var connection = sql.Connection;
        sql.Dispose();
        connection.Dispose();
    }

    private static QueueSummary Summarize(SqlCommands sql, int maxListed, DateTimeOffset now)
    {
        // One read transaction: every figure from the same moment of the file.
        sql.Execute("BEGIN");
        try
        {
            long pending = 0, claimed = 0;
            TimeSpan? oldestAge = null;
            using (var counts = sql.Read(
                """
                SELECT count(*) FILTER (WHERE state = 1 AND expires_at > $now),
                       count(*) FILTER (WHERE NOT (state = 1 AND expires_at > $now)),
                       min(enqueued_at) FILTER (WHERE NOT (state = 1 AND expires_at > $now))
                FROM batches WHERE state < 2
                """,
                ("$now", now.UtcTicks)))
            {
                counts.Read();
                claimed = counts.GetInt64(0);
                pending = counts.GetInt64(1);
                oldestAge = counts.IsDBNull(2) ? null : now - BatchRows.Time(counts.GetInt64(2));
            }

            var counters = new Dictionary<string, long>(StringComparer.Ordinal);
            using (var rows = sql.Read("SELECT name, value FROM counters"))
            {
                while (rows.Read())
                {
                    counters[rows.GetString(0)] = rows.GetInt64(1);
                }
            }

            var live = new List<LiveClaimSummary>();
            using (var rows = sql.Read(
                "SELECT session_id, owner, fence, expires_at, count(*) FROM batches WHERE state = 1 AND expires_at > $now GROUP BY fence ORDER BY expires_at, fence LIMIT $max",
                ("$now", now.UtcTicks),
                ("$max", maxListed)))
            {
                while (rows.Read())
                {
                    live.Add(new LiveClaimSummary(rows.GetString(0), rows.GetString(1), rows.GetInt64(2), BatchRows.Time(rows.GetInt64(3)), rows.GetInt32(4)));
                }
            }

            List<QueuedBatch> dead;
            using (var rows = sql.Read($"SELECT {BatchRows.Columns} FROM batches WHERE state = 3 ORDER BY settled_at DESC, seq DESC LIMIT $max", ("$max", maxListed)))
            {
                dead = BatchRows.ReadAll(rows);
            }

            return new QueueSummary
            {
                Pending = pending,
                Claimed = claimed,
                Completed = counters.GetValueOrDefault("completed"),
                DeadLettered = counters.GetValueOrDefault("dead_lettered"),
                OldestPendingAge = oldestAge,
                LiveClaims = live,
                DeadLetters = dead,
            };
        }
        finally
        {
            sql.Execute("COMMIT");
        }
    }

    private DateTimeOffset Now() => _time.GetUtcNow();

    private ValueTask<T> Write<T>(Func<SqlCommands, T> work, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _writer.WriteAsync(work, cancellationToken);
    }

    private async ValueTask<T> ReadAsync<T>(Func<SqlCommands, T> read, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        var sql = _readers.TryTake(out var pooled) ? pooled : null;
        try
        {
            sql ??= await Task.Run(OpenReader, cancellationToken).ConfigureAwait(false);
            var result = read(sql);
            _readers.Add(sql);
            sql = null;
            return result;
        }
        catch (SqliteException error) when (SqliteErrors.Describe(_path, error) is SqliteStoreException)
        {
            throw SqliteErrors.Describe(_path, error);
        }
        finally
        {
            // A reader that failed part way is not put back: its state is unknown.
            if (sql is not null)
            {
                Close(sql);
            }
        }
    }

    private SqlCommands OpenReader()
    {
        // Never creates the file: one deleted under a running store is an error naming it, not a
        // new empty store that would answer "nothing left" (the writer, open before, writes on into the deleted file).
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder(_connectionString) { Mode = SqliteOpenMode.ReadWrite }.ToString());
        connection.Open();
        var sql = new SqlCommands(connection);
        sql.Execute($"PRAGMA busy_timeout = {(long)_busyTimeout.TotalMilliseconds}");
        Tune(sql);
        return sql;
    }
}
