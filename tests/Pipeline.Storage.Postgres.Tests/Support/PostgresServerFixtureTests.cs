namespace Pipeline.Storage.Postgres.Tests.Support;

/// <summary>The fixture itself: a real server that answers, fresh databases, and a restart it survives.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresServerFixtureTests(PostgresServerFixture postgres)
{
    [Fact]
    public async Task A_fresh_database_answers_select_1_over_loopback()
    {
        var connectionString = await postgres.CreateDatabaseAsync();

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var select = new NpgsqlCommand("select 1, current_setting('listen_addresses'), current_setting('synchronous_commit'), current_setting('fsync')", connection);
        await using var reader = await select.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(1, reader.GetInt32(0));
        Assert.Equal("127.0.0.1", reader.GetString(1));
        Assert.Equal("on", reader.GetString(2));
        Assert.Equal("on", reader.GetString(3));
    }

    [Fact]
    public async Task Each_database_is_its_own_and_empty()
    {
        var first = await postgres.CreateDatabaseAsync();
        var second = await postgres.CreateDatabaseAsync();
        Assert.NotEqual(first, second);

        await using (var connection = new NpgsqlConnection(first))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand("create table only_here (id int)", connection);
            await create.ExecuteNonQueryAsync();
        }

        await using var other = new NpgsqlConnection(second);
        await other.OpenAsync();
        await using var count = new NpgsqlCommand("select count(*) from pg_tables where tablename = 'only_here'", other);
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_committed_row_survives_an_immediate_restart_and_connections_fail_while_down()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var write = new NpgsqlCommand("create table kept (id int); insert into kept values (7)", connection);
            await write.ExecuteNonQueryAsync();
        }

        await postgres.StopAsync();
        try
        {
            await using var refused = new NpgsqlConnection(connectionString + ";Pooling=false");
            await Assert.ThrowsAnyAsync<NpgsqlException>(() => refused.OpenAsync());
        }
        finally
        {
            await postgres.StartAsync();
        }

        await postgres.RestartAsync();
        await using var again = new NpgsqlConnection(connectionString + ";Pooling=false");
        await again.OpenAsync();
        await using var read = new NpgsqlCommand("select id from kept", again);
        Assert.Equal(7, await read.ExecuteScalarAsync());
    }
}
