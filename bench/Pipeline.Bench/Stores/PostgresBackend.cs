using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using Pipeline.Storage;
using Pipeline.Storage.Postgres;
using Pipeline.Testing;

namespace Pipeline.Bench.Stores;

/// <summary>
/// The PostgreSQL store on a throwaway cluster this bench starts (<see cref="PostgresServer"/>, the
/// tests' own: PostgreSQL 15, loopback, fsync and synchronous_commit on), one database, a schema
/// per store; the naive baseline on a plain table in a schema of its own.
/// </summary>
internal sealed class PostgresBackend : StoreBackend
{
    private readonly PostgresServer _server;
    private readonly string _connectionString;
    private readonly NpgsqlDataSource _admin;
    private readonly Dictionary<IQueuedWorkStore, string> _schemas = [];
    private int _schemaCount;
    private string? _naive;

    private PostgresBackend(PostgresServer server, string connectionString)
    {
        _server = server;
        _connectionString = connectionString;
        _admin = NpgsqlDataSource.Create(connectionString);
    }

    public override string Name => "postgres";

    public static async Task<PostgresBackend> StartAsync()
    {
        var server = await PostgresServer.StartNewAsync();
        try
        {
            return new PostgresBackend(server, await server.CreateDatabaseAsync("bench"));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public override async Task<IQueuedWorkStore> OpenEmptyAsync()
    {
        var schema = NextSchema("store");
        var store = await PostgresQueuedWorkStore.OpenAsync(new PostgresStoreOptions { ConnectionString = _connectionString, Schema = schema }, CancellationToken.None);
        _schemas[store] = schema;
        return store;
    }

    public override async Task DropAsync(IQueuedWorkStore store)
    {
        await store.DisposeAsync();
        if (_schemas.Remove(store, out var schema))
        {
            await ExecuteAsync($"drop schema {schema} cascade");
        }
    }

    public override async Task FillNaiveAsync(IReadOnlyList<QueuedBatchDraft> drafts)
    {
        if (_naive is not null)
        {
            await ExecuteAsync($"drop schema {_naive} cascade");
        }

        var s = _naive = NextSchema("naive");
        await ExecuteAsync($"create schema {s}");
        await ExecuteAsync($"""
            create table {s}.batches (
                sequence bigserial primary key, session_id text not null, payload bytea not null, idempotency_key text,
                enqueued_at timestamptz not null default now(), available_at timestamptz not null default now(),
                attempts integer not null default 0, state smallint not null default 0, owner text, fence bigint,
                expires_at timestamptz, dead_letter_reason text, settled_at timestamptz)
            """);
        // The index a naive worker would add: pending rows in order.
        await ExecuteAsync($"create index batches_pending on {s}.batches (sequence) where state = 0");
        await ExecuteAsync($"create unique index batches_key on {s}.batches (idempotency_key) where idempotency_key is not null");
        await using var insert = _admin.CreateCommand($"insert into {s}.batches (session_id, payload, idempotency_key) select * from unnest($1::text[], $2::bytea[], $3::text[])");
        insert.Parameters.Add(new NpgsqlParameter { Value = drafts.Select(d => d.SessionId).ToArray() });
        insert.Parameters.Add(new NpgsqlParameter { Value = drafts.Select(d => d.Payload.ToArray()).ToArray() });
        insert.Parameters.Add(new NpgsqlParameter { Value = drafts.Select(d => d.IdempotencyKey).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await insert.ExecuteNonQueryAsync();
        await ExecuteAsync($"vacuum analyze {s}.batches");
    }

    public override async Task<List<long>> DrainNaiveAsync(Action<ReadOnlyMemory<byte>> run)
    {
        var done = new List<long>();
        await using var connection = await _admin.OpenConnectionAsync();
        await using var select = new NpgsqlCommand($"select sequence, payload from {_naive}.batches where state = 0 order by sequence limit 1 for update skip locked", connection);
        await using var update = new NpgsqlCommand($"update {_naive}.batches set state = 2, owner = $2, fence = $1, settled_at = now() where sequence = $1", connection);
        var sequenceParameter = new NpgsqlParameter<long> { TypedValue = 0 };
        update.Parameters.Add(sequenceParameter);
        update.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Owner });
        await select.PrepareAsync();
        await update.PrepareAsync();
        while (true)
        {
            // BEGIN; SELECT … FOR UPDATE SKIP LOCKED LIMIT 1; UPDATE …; COMMIT: one row, one commit.
            await using var transaction = await connection.BeginTransactionAsync();
            select.Transaction = transaction;
            update.Transaction = transaction;
            long? sequence = null;
            await using (var reader = await select.ExecuteReaderAsync())
            {
                if (await reader.ReadAsync())
                {
                    sequence = reader.GetInt64(0);
                    run(reader.GetFieldValue<byte[]>(1));
                }
            }

            if (sequence is null)
            {
                await transaction.CommitAsync();
                return done;
            }

            sequenceParameter.TypedValue = sequence.Value;
            if (await update.ExecuteNonQueryAsync() != 1)
            {
                throw new InvalidOperationException($"Naive row {sequence} was not there to complete.");
            }

            await transaction.CommitAsync();
            done.Add(sequence.Value);
        }
    }

    public override async Task<(long Pending, long Completed)> CountNaiveAsync()
    {
        await using var count = _admin.CreateCommand($"select count(*) filter (where state = 0), count(*) filter (where state = 2) from {_naive}.batches");
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public override async ValueTask DisposeAsync()
    {
        await _admin.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await _server.DisposeAsync();
    }

    private string NextSchema(string prefix) => string.Create(CultureInfo.InvariantCulture, $"{prefix}_{++_schemaCount}");

    private async Task ExecuteAsync(string sql)
    {
        await using var command = _admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }
}
