using Npgsql;

namespace Pipeline.Storage.Postgres;

/// <summary>
/// The store's tables, created and versioned on open. One row in <c>schema_version</c> holds the
/// version; openers take a transaction-scoped advisory lock first, so two workers starting at once
/// against an empty database neither race on <c>CREATE</c> nor both migrate.
/// </summary>
/// <remarks>
/// <para><b>batches</b>: one row per enqueued batch, kept after it is settled (state 2 completed, 3
/// dead-lettered; 0 while unsettled) so <c>pipeline status</c> can count them. <c>sequence</c> is the
/// store-wide enqueue order and the batch id. A claim does not touch its batches' rows: whether an
/// unsettled batch is held is read off its session's claim (below). <c>released_fence</c> marks a
/// batch its claim handed back (abandoned) while the claim holds others; <c>owner</c>, <c>fence</c>
/// and <c>expires_at</c> keep the claim a batch was settled under.</para>
/// <para><b>sessions</b>: one row per session, the lock every change to a session's batches takes
/// first, and the cross-session claim's queue: <c>head_sequence</c> is the earliest unsettled batch,
/// <c>ready_at</c> when the session can next be claimed (its head's <c>available_at</c>, or its live
/// claim's expiry, whichever is later; null when nothing is left), <c>claim_*</c> the claim holding
/// batches now (all null when none). The claim holds the unsettled batches up to
/// <c>claim_last</c> (a claim takes a run from the head, so nothing before it is unsettled) but
/// those it released. A claim across sessions walks <c>sessions_ready</c> in head order, ready ones
/// only, <c>FOR UPDATE SKIP LOCKED</c>; a claim is one session row updated, a settle one batch row
/// and its session's row.</para>
/// </remarks>
internal static class PostgresSchema
{
    /// <summary>The newest version this code writes and understands.</summary>
    public const int CurrentVersion = 1;

    private static readonly string[] Version1 =
    [
        "create sequence {0}.batch_sequence as bigint",
        "create sequence {0}.fence_sequence as bigint",
        """
        create table {0}.batches (
            sequence bigint primary key,
            session_id text not null,
            payload bytea not null,
            idempotency_key text,
            enqueued_at timestamptz not null,
            available_at timestamptz not null,
            attempts integer not null default 0,
            state smallint not null default 0,
            released_fence bigint,
            owner text,
            fence bigint,
            expires_at timestamptz,
            dead_letter_reason text,
            settled_at timestamptz)
        """,
        "create unique index batches_idempotency_key on {0}.batches (idempotency_key) where idempotency_key is not null",
        // A session's unsettled batches in order: heads, claims, what a claim holds, lists. Settled rows drop out of it.
        "create index batches_unsettled on {0}.batches (session_id, sequence) where state = 0",
        "create index batches_dead on {0}.batches (settled_at) where state = 3",
        """
        create table {0}.sessions (
            session_id text primary key,
            head_sequence bigint,
            ready_at timestamptz,
            claim_fence bigint,
            claim_owner text,
            claim_expires_at timestamptz,
            claim_last bigint)
        """,
        // The claim across sessions: oldest head first, ready_at checked inside the index.
        "create index sessions_ready on {0}.sessions (head_sequence, ready_at) where head_sequence is not null",
        // Renew finds a claim by its fence.
        "create unique index sessions_claim_fence on {0}.sessions (claim_fence) where claim_fence is not null",
    ];

    /// <summary>
    /// Creates the schema when missing and migrates an older one, in one transaction; throws
    /// <see cref="StoreSchemaException"/> (changing nothing) when the database holds a newer version.
    /// </summary>
    public static async Task EnsureAsync(NpgsqlDataSource dataSource, string schema, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        await ExecuteAsync(connection, transaction, "select pg_advisory_xact_lock(hashtext('pipeline.queued-work.schema:' || $1))", cancellationToken, schema).ConfigureAwait(false);
        // Created only when missing: "create schema if not exists" asks for CREATE on the database
        // even when the schema is there, and a schema a DBA made for the worker's user is enough.
        await using (var exists = new NpgsqlCommand("select 1 from pg_namespace where nspname = $1", connection, transaction))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = schema });
            if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
            {
                await ExecuteAsync(connection, transaction, $"create schema {schema}", cancellationToken).ConfigureAwait(false);
            }
        }

        await ExecuteAsync(connection, transaction, $"create table if not exists {schema}.schema_version (id integer primary key check (id = 1), version integer not null)", cancellationToken).ConfigureAwait(false);

        var found = await ReadVersionAsync(connection, transaction, schema, cancellationToken).ConfigureAwait(false);
        if (found > CurrentVersion)
        {
            throw new StoreSchemaException("PostgreSQL", found.Value, CurrentVersion);
        }

        if (found is null)
        {
            foreach (var statement in Version1)
            {
                await ExecuteAsync(connection, transaction, string.Format(System.Globalization.CultureInfo.InvariantCulture, statement, schema), cancellationToken).ConfigureAwait(false);
            }

            await ExecuteAsync(connection, transaction, $"insert into {schema}.schema_version (id, version) values (1, $1)", cancellationToken, CurrentVersion).ConfigureAwait(false);
        }

        // Versions 2 and on migrate here, each step from the one before.
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The version recorded in <paramref name="schema"/>, or null when it holds none yet.</summary>
    internal static async Task<int?> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string schema, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand($"select version from {schema}.schema_version where id = 1", connection, transaction);
        return await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is int version ? version : null;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params object[] arguments)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var argument in arguments)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = argument });
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
