namespace Pipeline.Storage.Postgres.Tests.Support;

/// <summary>
/// A database whose clock the test sets: <c>clock_timestamp()</c>, <c>statement_timestamp()</c> and
/// <c>now()</c> are shadowed, for connections made with <see cref="ConnectionString"/>, by functions in
/// a <c>skew</c> schema that add a shift the test controls. (PostgreSQL searches <c>pg_catalog</c>
/// first unless the search path names it later, as this one does.) The worker's own clock never
/// moves, so what follows the shift follows the database's clock.
/// </summary>
/// <remarks>
/// The shadowing <c>statement_timestamp()</c> is volatile (the real one is stable), so the planner
/// never calls it ahead of the statement's execution (a stall, below, happens after the statement's
/// snapshot); a claim across sessions then checks readiness row by row instead of in its index.
/// </remarks>
public sealed class DatabaseClock
{
    private readonly string _plainConnectionString;

    private DatabaseClock(string plainConnectionString, string connectionString)
    {
        _plainConnectionString = plainConnectionString;
        ConnectionString = connectionString;
    }

    /// <summary>Connections made with this see the shifted clock.</summary>
    public string ConnectionString { get; }

    /// <summary>Installs the shifted clock in <paramref name="connectionString"/>'s database, shifted by <paramref name="shift"/> from the real one.</summary>
    public static async Task<DatabaseClock> InstallAsync(string connectionString, TimeSpan shift)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var install = new NpgsqlCommand(
            """
            create schema skew;
            create table skew.shift (id integer primary key, value interval not null, stall float8 not null default 0);
            create function skew.clock_timestamp() returns timestamptz language sql volatile
                as 'select pg_catalog.clock_timestamp() + (select value from skew.shift where id = 1)';
            create function skew.statement_timestamp() returns timestamptz language plpgsql volatile as $$
                declare shift skew.shift;
                begin
                    select * into shift from skew.shift where id = 1;
                    if shift.stall > 0 then
                        perform pg_sleep(shift.stall);
                    end if;
                    return pg_catalog.statement_timestamp() + shift.value;
                end $$;
            create function skew.now() returns timestamptz language sql stable
                as 'select pg_catalog.now() + (select value from skew.shift where id = 1)';
            """,
            connection);
        await install.ExecuteNonQueryAsync();
        await using var set = new NpgsqlCommand("insert into skew.shift values (1, $1)", connection) { Parameters = { new NpgsqlParameter<TimeSpan> { TypedValue = shift } } };
        await set.ExecuteNonQueryAsync();
        var shifted = new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = "skew,pg_catalog,public" }.ConnectionString;
        return new DatabaseClock(connectionString, shifted);
    }

    /// <summary>Moves the database's clock on by <paramref name="by"/> (at once; the real clock keeps running too).</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        await using var connection = new NpgsqlConnection(_plainConnectionString);
        await connection.OpenAsync();
        await using var advance = new NpgsqlCommand("update skew.shift set value = value + $1 where id = 1", connection) { Parameters = { new NpgsqlParameter<TimeSpan> { TypedValue = by } } };
        await advance.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// From now on a statement that reads <c>statement_timestamp()</c> (the claim across sessions,
    /// before it scans) sleeps <paramref name="stall"/> first: after its snapshot is taken, before
    /// it locks anything. <see cref="TimeSpan.Zero"/> ends it.
    /// </summary>
    public async Task StallAsync(TimeSpan stall)
    {
        await using var connection = new NpgsqlConnection(_plainConnectionString);
        await connection.OpenAsync();
        await using var set = new NpgsqlCommand("update skew.shift set stall = $1 where id = 1", connection) { Parameters = { new NpgsqlParameter<double> { TypedValue = stall.TotalSeconds } } };
        await set.ExecuteNonQueryAsync();
    }

    /// <summary>Whether a statement of this database is sleeping in <see cref="StallAsync"/>'s stall now.</summary>
    public async Task<bool> StalledAsync()
    {
        await using var connection = new NpgsqlConnection(_plainConnectionString);
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand("select count(*) from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep'", connection);
        return (long)(await count.ExecuteScalarAsync())! > 0;
    }

    /// <summary>The database's (shifted) clock now.</summary>
    public Task<DateTimeOffset> NowAsync() => PostgresStores.DatabaseNowAsync(ConnectionString);
}
