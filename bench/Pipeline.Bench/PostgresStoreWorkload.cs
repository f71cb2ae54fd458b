using System.Text;
using Npgsql;
using Pipeline.Storage;
using Pipeline.Storage.Postgres;
using Pipeline.Testing;

namespace Pipeline.Bench;

/// <summary>
/// The PostgreSQL store's bench work, shared by <see cref="PostgresStoreBenchmarks"/> and
/// <c>--quick-postgres</c>: one local PostgreSQL 15 cluster (<see cref="PostgresServer"/>, fsync and
/// synchronous_commit on), the store over it, and the naive baseline's table in the same database.
/// </summary>
internal sealed class PostgresStoreWorkload : IAsyncDisposable
{
    /// <summary>Batches per iteration.</summary>
    public const int Count = 20_000;

    /// <summary>Sessions the batches are spread over (20 batches each, in order).</summary>
    public const int Sessions = 1_000;

    private static readonly byte[] Payload = Encoding.UTF8.GetBytes("""{"id":"00000000","tool":"noop","args":{}}""");

    private PostgresServer? _server;
    private NpgsqlDataSource _naive = null!;

    public PostgresQueuedWorkStore Store { get; private set; } = null!;

    public static async Task<PostgresStoreWorkload> StartAsync()
    {
        // PIPELINE_BENCH_POSTGRES: a connection string to a server of one's own (to look at plans), instead of a fresh cluster.
        var given = Environment.GetEnvironmentVariable("PIPELINE_BENCH_POSTGRES");
        var workload = new PostgresStoreWorkload { _server = given is null ? await PostgresServer.StartNewAsync() : null };
        var connectionString = given ?? await workload._server!.CreateDatabaseAsync("bench");
        workload.Store = await PostgresQueuedWorkStore.OpenAsync(new PostgresStoreOptions { ConnectionString = connectionString }, CancellationToken.None);
        workload._naive = NpgsqlDataSource.Create(connectionString);
        await using var create = workload._naive.CreateCommand("""
            drop table if exists naive_jobs;
            create table naive_jobs (id bigserial primary key, session_id text not null, payload bytea not null, state smallint not null default 0, owner text, expires_at timestamptz);
            create index naive_ready on naive_jobs (id) where state = 0
            """);
        await create.ExecuteNonQueryAsync();
        return workload;
    }

    /// <summary>The drafts of one iteration: <see cref="Count"/> batches, session i % <see cref="Sessions"/>.</summary>
    public static QueuedBatchDraft[] Drafts() =>
        [.. Enumerable.Range(0, Count).Select(i => new QueuedBatchDraft { SessionId = $"session-{i % Sessions:D4}", Payload = Payload })];

    /// <summary>Empties the store's tables and the naive one (each iteration starts from the same place).</summary>
    public async Task ResetAsync()
    {
        foreach (var sql in new[] { "truncate pipeline.batches, pipeline.sessions, naive_jobs", "vacuum analyze pipeline.batches", "vacuum analyze pipeline.sessions", "vacuum analyze naive_jobs" })
        {
            await using var command = _naive.CreateCommand(sql);
            await command.ExecuteNonQueryAsync();
        }
    }

    /// <summary>Claims and completes everything ready: <paramref name="claimers"/> loops, each claiming up to <paramref name="sessions"/> sessions (one batch each) and settling what it got in one call.</summary>
    public async Task<int> DrainAsync(int sessions, int claimers = 1)
    {
        var lease = new LeaseRequest { Owner = "bench" };
        var done = 0;
        await Task.WhenAll(Enumerable.Range(0, claimers).Select(async _ =>
        {
            while (true)
            {
                var claims = await Store.ClaimReadyAsync(lease, sessions, 1, CancellationToken.None);
                if (claims.Count == 0)
                {
                    return;
                }

                var settles = new BatchSettlement[claims.Count];
                for (var i = 0; i < claims.Count; i++)
                {
                    settles[i] = BatchSettlement.Complete(claims[i].Batches[0].BatchId, claims[i].Fence);
                }

                await Store.SettleAsync(settles, CancellationToken.None);
                Interlocked.Add(ref done, settles.Length);
            }
        }));
        return done;
    }

    /// <summary>Fills the naive table with <paramref name="count"/> rows (not timed).</summary>
    public async Task FillNaiveAsync(int count)
    {
        await using var fill = _naive.CreateCommand("insert into naive_jobs (session_id, payload) select 'session-' || (g % 1000), $1 from generate_series(1, $2) g");
        fill.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = Payload });
        fill.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        await fill.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// The naive baseline: one row per transaction (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1, run
    /// nothing, mark it done, commit) until none is left. Returns the rows done.
    /// </summary>
    public async Task<int> NaiveDrainAsync()
    {
        var done = 0;
        await using var connection = await _naive.OpenConnectionAsync();
        while (true)
        {
            await using var transaction = await connection.BeginTransactionAsync();
            await using var take = new NpgsqlCommand("select id from naive_jobs where state = 0 order by id limit 1 for update skip locked", connection, transaction);
            if (await take.ExecuteScalarAsync() is not long id)
            {
                await transaction.CommitAsync();
                return done;
            }

            await using var complete = new NpgsqlCommand("update naive_jobs set state = 2 where id = $1", connection, transaction) { Parameters = { new NpgsqlParameter<long> { TypedValue = id } } };
            await complete.ExecuteNonQueryAsync();
            await transaction.CommitAsync();
            done++;
        }
    }

    /// <summary>
    /// CPU time the server's processes (the postmaster's children) have used so far: from
    /// <c>/proc</c>, so a busy machine's waiting is not counted. The postmaster's pid comes from the
    /// cluster's <c>postmaster.pid</c>, or PIPELINE_BENCH_POSTGRES_PID with a server of one's own.
    /// </summary>
    public TimeSpan ServerCpu()
    {
        var pidText = _server is not null
            ? File.ReadLines(Path.Combine(_server.DataDirectory, "postmaster.pid")).First()
            : Environment.GetEnvironmentVariable("PIPELINE_BENCH_POSTGRES_PID");
        if (!int.TryParse(pidText, out var postmaster))
        {
            return TimeSpan.Zero;
        }

        long ticks = 0;
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                var pid = int.Parse(Path.GetFileName(folder), System.Globalization.CultureInfo.InvariantCulture);
                if (pid == postmaster || int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == postmaster)
                {
                    // utime and stime (fields 14 and 15 of stat; 12 and 13 after the name), plus children's.
                    ticks += long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)
                        + long.Parse(fields[13], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[14], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException)
            {
                // Not a process folder, or the process ended meanwhile.
            }
        }

        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ
    }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        await _naive.DisposeAsync();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
