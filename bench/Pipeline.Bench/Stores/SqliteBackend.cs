using System.Globalization;
using Microsoft.Data.Sqlite;
using Pipeline.Storage;
using Pipeline.Storage.Sqlite;

namespace Pipeline.Bench.Stores;

/// <summary>The SQLite store on a temp file per store; the naive baseline on a file of its own with the store's pragmas (WAL, synchronous FULL).</summary>
internal sealed class SqliteBackend : StoreBackend
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"pipeline-bench-sqlite-{Guid.NewGuid():N}");
    private int _files;
    private string? _naive;

    public SqliteBackend() => Directory.CreateDirectory(_root);

    public override string Name => "sqlite";

    public override async Task<IQueuedWorkStore> OpenEmptyAsync() =>
        await SqliteQueuedWorkStore.OpenAsync(new SqliteStoreOptions { Path = NextFile("store") });

    public override async Task DropAsync(IQueuedWorkStore store)
    {
        var path = ((SqliteQueuedWorkStore)store).Path;
        await store.DisposeAsync();
        Delete(path);
    }

    public override Task FillNaiveAsync(IReadOnlyList<QueuedBatchDraft> drafts)
    {
        if (_naive is not null)
        {
            Delete(_naive);
        }

        _naive = NextFile("naive");
        using var connection = Open(_naive);
        Execute(connection, """
            CREATE TABLE batches (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, payload BLOB NOT NULL, idempotency_key TEXT,
                enqueued_at INTEGER NOT NULL, available_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                state INTEGER NOT NULL DEFAULT 0, owner TEXT, fence INTEGER, expires_at INTEGER, dead_letter_reason TEXT, settled_at INTEGER)
            """);
        // The index a naive worker would add: pending rows in order.
        Execute(connection, "CREATE INDEX batches_pending ON batches (seq) WHERE state = 0");
        Execute(connection, "CREATE UNIQUE INDEX batches_by_key ON batches (idempotency_key) WHERE idempotency_key IS NOT NULL");
        using var transaction = connection.BeginTransaction();
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = "INSERT INTO batches (session_id, payload, idempotency_key, enqueued_at, available_at) VALUES ($s, $p, $k, $t, $t)";
        var session = insert.Parameters.Add("$s", SqliteType.Text);
        var payload = insert.Parameters.Add("$p", SqliteType.Blob);
        var key = insert.Parameters.Add("$k", SqliteType.Text);
        insert.Parameters.AddWithValue("$t", DateTimeOffset.UtcNow.UtcTicks);
        foreach (var draft in drafts)
        {
            session.Value = draft.SessionId;
            payload.Value = draft.Payload.ToArray();
            key.Value = (object?)draft.IdempotencyKey ?? DBNull.Value;
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
        return Task.CompletedTask;
    }

    public override Task<List<long>> DrainNaiveAsync(Action<ReadOnlyMemory<byte>> run)
    {
        var done = new List<long>();
        using var connection = Open(_naive!);
        using var select = connection.CreateCommand();
        select.CommandText = "SELECT seq, payload FROM batches WHERE state = 0 ORDER BY seq LIMIT 1";
        using var update = connection.CreateCommand();
        update.CommandText = "UPDATE batches SET state = 2, owner = $owner, fence = $seq, settled_at = $now WHERE seq = $seq AND state = 0";
        var seq = update.Parameters.Add("$seq", SqliteType.Integer);
        var now = update.Parameters.Add("$now", SqliteType.Integer);
        update.Parameters.AddWithValue("$owner", Owner);
        while (true)
        {
            // BEGIN IMMEDIATE (Microsoft.Data.Sqlite's default): the write lock from the select on, so no other worker takes the row.
            using var transaction = connection.BeginTransaction();
            select.Transaction = transaction;
            update.Transaction = transaction;
            long sequence;
            using (var reader = select.ExecuteReader())
            {
                if (!reader.Read())
                {
                    transaction.Commit();
                    return Task.FromResult(done);
                }

                sequence = reader.GetInt64(0);
                run((byte[])reader.GetValue(1));
            }

            seq.Value = sequence;
            now.Value = DateTimeOffset.UtcNow.UtcTicks;
            if (update.ExecuteNonQuery() != 1)
            {
                throw new InvalidOperationException($"Naive row {sequence} was not pending any more.");
            }

            transaction.Commit();
            done.Add(sequence);
        }
    }

    public override Task<(long Pending, long Completed)> CountNaiveAsync()
    {
        using var connection = Open(_naive!);
        using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 2) FROM batches";
        using var reader = count.ExecuteReader();
        reader.Read();
        return Task.FromResult((reader.GetInt64(0), reader.GetInt64(1)));
    }

    public override ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A file still closing: the temp folder is cleaned eventually.
        }

        return ValueTask.CompletedTask;
    }

    private string NextFile(string prefix) => Path.Combine(_root, string.Create(CultureInfo.InvariantCulture, $"{prefix}-{++_files}.db"));

    // The store's own settings (SqliteQueuedWorkStore.OpenWriter and Tune), so the baseline differs in its queries only.
    private static SqliteConnection Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        foreach (var pragma in new[] { "journal_mode = WAL", "synchronous = FULL", "cache_size = -65536", "mmap_size = 268435456", "temp_store = MEMORY", "wal_autocheckpoint = 4000" })
        {
            Execute(connection, "PRAGMA " + pragma);
        }

        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static void Delete(string path)
    {
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            File.Delete(file);
        }
    }
}
