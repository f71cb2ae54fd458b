using System.Text;
using Microsoft.Data.Sqlite;
using Pipeline.Storage.Sqlite.Tests.Support;

namespace Pipeline.Storage.Sqlite.Tests;

/// <summary>What only the SQLite store does: its file, its schema version, other stores on the same file, and errors about the file.</summary>
public sealed class SqliteQueuedWorkStoreTests(ITestOutputHelper output) : IDisposable
{
    private static readonly LeaseRequest Lease = new() { Owner = "w", TimeToLive = TimeSpan.FromMinutes(5) };

    private readonly TempDatabase _database = new();
    private readonly FakeTimeProvider _time = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task A_new_file_gets_the_schema_and_a_reopened_store_keeps_every_batch_and_counter()
    {
        long lastFence;
        await using (var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time))
        {
            await store.EnqueueAsync([Draft("s", "1"), Draft("s", "2", key: "k"), Draft("s", "3"), Draft("t", "4"), Draft("u", "5")], default);
            var done = await store.ClaimSessionAsync("t", Lease, 1, default);
            var dead = await store.ClaimSessionAsync("u", Lease, 1, default);
            await store.SettleAsync([BatchSettlement.Complete(done!.Batches[0].BatchId, done.Fence), BatchSettlement.DeadLetter(dead!.Batches[0].BatchId, dead.Fence, "bad")], default);
            lastFence = (await store.ClaimSessionAsync("s", Lease, 1, default))!.Fence;
        }

        Assert.Equal(2L, ReadPragma("user_version"));

        await using var reopened = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);
        var listed = await reopened.ListAsync("s", default);
        Assert.Equal(["1", "2", "3"], listed.Select(b => Encoding.UTF8.GetString(b.Payload.Span)));
        Assert.Equal([QueuedBatchState.Claimed, QueuedBatchState.Pending, QueuedBatchState.Pending], listed.Select(b => b.State));
        Assert.Equal(lastFence, listed[0].Lease?.Fence);
        var summary = await reopened.SummarizeAsync(10, default);
        Assert.Equal((2L, 1L, 1L, 1L), (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered));
        Assert.Equal("bad", Assert.Single(summary.DeadLetters).DeadLetterReason);
        Assert.False((await reopened.EnqueueAsync([Draft("s", "again", key: "k")], default))[0].Created);
        var next = await reopened.ClaimReadyAsync(Lease, 10, 10, default);
        Assert.Empty(next);
        await reopened.SettleAsync([BatchSettlement.Complete(listed[0].BatchId, lastFence)], default);
        var after = await reopened.ClaimSessionAsync("s", Lease, 10, default);
        Assert.True(after!.Fence > lastFence, $"fence {after.Fence} after reopening, {lastFence} before");
        Assert.Equal(["2", "3"], after.Batches.Select(b => Encoding.UTF8.GetString(b.Payload.Span)));
    }

    [Fact]
    public async Task The_file_is_in_wal_mode_after_open()
    {
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);

        Assert.Equal("wal", ReadPragma("journal_mode"));
    }

    [Fact]
    public async Task Committed_batches_reach_the_database_file_itself_while_the_store_stays_open()
    {
        // The writer never folds the WAL back itself (wal_autocheckpoint off); the checkpointer does,
        // on its own connection. Seen from outside: the main file alone holds the batches.
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);
        await store.EnqueueAsync([.. Enumerable.Range(0, 200).Select(i => Draft($"s{i % 7}", $"payload {i}"))], default);

        var copy = _database.Path + ".copy";
        await Eventually.WaitForAsync(
            () =>
            {
                try
                {
                    return Task.FromResult(CopyHoldsAll());
                }
                catch (SqliteException)
                {
                    return Task.FromResult(false); // copied while a checkpoint was writing it: a torn copy, look again
                }
            },
            TimeSpan.FromSeconds(10),
            "the 200 batches in the database file without its WAL");

        bool CopyHoldsAll()
        {
            File.Copy(_database.Path, copy, overwrite: true); // the main file without its WAL
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = copy, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT count(*) FROM sqlite_schema WHERE name = 'batches'";
            if ((long)command.ExecuteScalar()! == 0)
            {
                return false;
            }

            command.CommandText = "SELECT count(*) FROM batches";
            return (long)command.ExecuteScalar()! == 200;
        }
    }

    [Fact]
    public async Task The_wal_stays_bounded_while_writes_never_pause()
    {
        // A passive checkpoint never catches up with a writer that never pauses, and the WAL is only
        // started over once one has: it grew to 1.9 GB under a busy worker. 512 MiB written without
        // a pause must leave it near journal_size_limit (64 MiB), not near 512 MiB.
        const long Written = 512L << 20;
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options with { Durability = SqliteDurability.Normal }, _time);
        var payload = new string('x', 16 << 10);
        long enqueued = 0, largestWal = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            while (Interlocked.Read(ref enqueued) < Written)
            {
                await store.EnqueueAsync([.. Enumerable.Range(0, 64).Select(i => Draft($"s{w}", payload))], stop.Token);
                Interlocked.Add(ref enqueued, 64L * payload.Length);
            }
        })).ToArray();
        var wal = new FileInfo(_database.Path + "-wal");
        while (!writers.All(t => t.IsCompleted))
        {
            wal.Refresh();
            largestWal = Math.Max(largestWal, wal.Exists ? wal.Length : 0);
            await Task.Delay(20, stop.Token);
        }

        await Task.WhenAll(writers);
        output.WriteLine($"largest WAL {largestWal >> 20} MiB while {enqueued >> 20} MiB were enqueued");
        Assert.True(largestWal < 160L << 20, $"the WAL reached {largestWal >> 20} MiB");
    }

    [Fact]
    public async Task A_file_deleted_under_an_open_store_is_an_error_naming_it_and_no_empty_store_takes_its_place()
    {
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);
        await store.EnqueueAsync([Draft("s", "1")], default);
        foreach (var file in Directory.EnumerateFiles(_database.Folder))
        {
            File.Delete(file);
        }

        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => store.SummarizeAsync(0, default).AsTask());

        AssertNamesFileAndCause(refused, _database.Path, "cannot be opened");
        await Task.Delay(300); // past the checkpointer's interval: it must not make the file either
        Assert.False(File.Exists(_database.Path), "an empty database file took the deleted one's place");
    }

    [Fact]
    public async Task A_version_1_file_is_migrated_on_open_keeping_every_batch_its_payload_state_and_lease()
    {
        using (var connection = OpenRaw())
        {
            // Version 1 as the code wrote it (its statements stay as they were), then the test's rows.
            foreach (var statement in SqliteSchema.CreateVersion1.Concat(new[]
            {
                "UPDATE counters SET value = 7 WHERE name = 'fence'",
                "UPDATE counters SET value = 1 WHERE name = 'completed'",
                "INSERT INTO batches (seq, session_id, payload, idempotency_key, enqueued_at, available_at, state, owner, fence, expires_at, settled_at) VALUES (1, 's', x'6f6e65', 'k1', 0, 0, 2, 'w', 6, 1, 1)",
                "INSERT INTO batches (seq, session_id, payload, idempotency_key, enqueued_at, available_at, state, owner, fence, expires_at) VALUES (2, 's', x'74776f', 'k2', 0, 0, 1, 'old', 7, 1)",
                "INSERT INTO batches (seq, session_id, payload, enqueued_at, available_at) VALUES (3, 's', x'7468726565', 0, 0)",
                "INSERT INTO sessions (head_seq, session_id, ready_at) VALUES (2, 's', 1)",
                "PRAGMA user_version = 1",
            }))
            {
                using var command = connection.CreateCommand();
#pragma warning disable CA2100 // The test's own statements.
                command.CommandText = statement;
#pragma warning restore CA2100
                command.ExecuteNonQuery();
            }
        }

        // The fake clock (2000-01-01) is long past the old claim's expiry (tick 1): it has lapsed.
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);

        Assert.Equal(2L, ReadPragma("user_version"));
        var listed = await store.ListAsync("s", default);
        Assert.Equal(["two", "three"], listed.Select(b => Encoding.UTF8.GetString(b.Payload.Span)));
        Assert.Equal((QueuedBatchState.Claimed, "old", 7L), (listed[0].State, listed[0].Lease?.Owner, listed[0].Lease?.Fence));
        Assert.False((await store.EnqueueAsync([Draft("s", "again", key: "k1")], default))[0].Created); // the keys kept answering
        var claim = await store.ClaimReadyAsync(Lease, 10, 10, default);
        var only = Assert.Single(claim);
        Assert.True(only.Fence > 7, $"fence {only.Fence} after the migration, 7 before");
        Assert.Equal(["two", "three"], only.Batches.Select(b => Encoding.UTF8.GetString(b.Payload.Span)));
        Assert.Equal(1, only.Batches[0].Attempts); // the lapsed claim ended without a completion
    }

    [Fact]
    public async Task A_newer_schema_version_is_refused_naming_both_versions_and_the_file_is_left_untouched()
    {
        await (await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time)).DisposeAsync();
        using (var connection = OpenRaw())
        {
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA user_version = 7";
            command.ExecuteNonQuery();
        }

        var bytes = await File.ReadAllBytesAsync(_database.Path);
        var written = File.GetLastWriteTimeUtc(_database.Path);

        var refused = await Assert.ThrowsAsync<StoreSchemaException>(() => SqliteQueuedWorkStore.OpenAsync(_database.Options, _time));

        Assert.Equal((7, 2), (refused.Found, refused.Supported));
        Assert.Contains("version 7", refused.Message, StringComparison.Ordinal);
        Assert.Contains("version 2", refused.Message, StringComparison.Ordinal);
        Assert.Contains(_database.Path, refused.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(_database.Path));
        Assert.Equal(written, File.GetLastWriteTimeUtc(_database.Path));
    }

    [Fact]
    public async Task A_second_store_on_the_same_file_sees_the_first_ones_writes_and_its_claims()
    {
        await using var first = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);
        await using var second = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);

        var enqueued = await first.EnqueueAsync([Draft("s", "1"), Draft("s", "2")], default);
        Assert.Equal(enqueued.Select(r => r.Batch.BatchId), (await second.ListAsync("s", default)).Select(b => b.BatchId));

        var claim = await second.ClaimSessionAsync("s", Lease, 1, default);
        Assert.Null(await first.ClaimSessionAsync("s", Lease, 10, default));
        Assert.Empty(await first.ClaimReadyAsync(Lease, 10, 10, default));
        Assert.Equal(claim!.Fence, Assert.Single((await first.SummarizeAsync(10, default)).LiveClaims).Fence);

        Assert.Equal([SettleStatus.Settled], await first.SettleAsync([BatchSettlement.Complete(claim.Batches[0].BatchId, claim.Fence)], default));
        var next = await first.ClaimSessionAsync("s", Lease, 10, default);
        Assert.True(next!.Fence > claim.Fence, $"the first store's fence {next.Fence} after the second's {claim.Fence}");
    }

    [Fact]
    public async Task Two_stores_on_one_file_racing_never_claim_a_batch_twice()
    {
        await using var first = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);
        await using var second = await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time);

        await ConcurrentClaimers.RunAsync([first, second], claimers: 8, sessions: 40, batches: 1_000, Seeds.Next(output));
    }

    [Fact]
    public async Task A_file_locked_by_another_writer_past_the_busy_timeout_is_a_transient_error()
    {
        await using var store = await SqliteQueuedWorkStore.OpenAsync(_database.Options with { BusyTimeout = TimeSpan.FromMilliseconds(100) }, _time);
        using var other = OpenRaw();
        using (var begin = other.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE";
            begin.ExecuteNonQuery();
        }

        var busy = await Assert.ThrowsAnyAsync<Exception>(async () => await store.EnqueueAsync([Draft("s", "1")], default));
        Assert.True(store.IsTransient(busy), $"{busy.GetType().Name}: {busy.Message}");

        using (var rollback = other.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            rollback.ExecuteNonQuery();
        }

        Assert.True((await store.EnqueueAsync([Draft("s", "1")], default))[0].Created);
    }

    [Fact]
    public async Task A_read_only_file_is_refused_naming_it()
    {
        await (await SqliteQueuedWorkStore.OpenAsync(_database.Options, _time)).DisposeAsync();
        if (OperatingSystem.IsWindows())
        {
            File.SetAttributes(_database.Path, FileAttributes.ReadOnly);
        }
        else
        {
            File.SetUnixFileMode(_database.Path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => SqliteQueuedWorkStore.OpenAsync(_database.Options, _time));

        AssertNamesFileAndCause(refused, _database.Path, "read-only");
    }

    [Fact]
    public async Task A_directory_path_is_refused_naming_it()
    {
        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => SqliteQueuedWorkStore.OpenAsync(new SqliteStoreOptions { Path = _database.Folder }, _time));

        AssertNamesFileAndCause(refused, _database.Folder, "directory");
    }

    [Fact]
    public async Task A_path_whose_folder_is_missing_is_refused_naming_it()
    {
        var path = Path.Combine(_database.Folder, "missing", "store.db");

        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => SqliteQueuedWorkStore.OpenAsync(new SqliteStoreOptions { Path = path }, _time));

        AssertNamesFileAndCause(refused, path, "does not exist");
        Assert.False(Directory.Exists(Path.GetDirectoryName(path)));
    }

    [Fact]
    public async Task A_file_that_is_not_a_sqlite_database_is_refused_naming_it_and_left_as_it_was()
    {
        var garbage = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("this is not a database, only text. ", 200)));
        await File.WriteAllBytesAsync(_database.Path, garbage);

        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => SqliteQueuedWorkStore.OpenAsync(_database.Options, _time));

        AssertNamesFileAndCause(refused, _database.Path, "not a SQLite database");
        Assert.Equal(garbage, await File.ReadAllBytesAsync(_database.Path));
    }

    [Fact]
    public async Task Another_programs_sqlite_database_is_refused_naming_it_and_left_as_it_was()
    {
        using (var connection = OpenRaw())
        {
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)";
            command.ExecuteNonQuery();
        }

        var bytes = await File.ReadAllBytesAsync(_database.Path);

        var refused = await Assert.ThrowsAsync<SqliteStoreException>(() => SqliteQueuedWorkStore.OpenAsync(_database.Options, _time));

        AssertNamesFileAndCause(refused, _database.Path, "something else");
        Assert.Equal(bytes, await File.ReadAllBytesAsync(_database.Path));
        Assert.Equal("delete", ReadPragma("journal_mode"));
    }

    private static QueuedBatchDraft Draft(string session, string payload, string? key = null) =>
        new() { SessionId = session, Payload = Encoding.UTF8.GetBytes(payload), IdempotencyKey = key };

    private static void AssertNamesFileAndCause(SqliteStoreException refused, string path, string cause)
    {
        Assert.Equal(path, refused.Path);
        Assert.Contains($"'{path}'", refused.Message, StringComparison.Ordinal);
        Assert.Contains(cause, refused.Message, StringComparison.Ordinal);
    }

    private SqliteConnection OpenRaw()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _database.Path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private object? ReadPragma(string name)
    {
        using var connection = OpenRaw();
        using var command = connection.CreateCommand();
#pragma warning disable CA2100 // The test's own pragma names.
        command.CommandText = $"PRAGMA {name}";
#pragma warning restore CA2100
        return command.ExecuteScalar();
    }
}
