namespace Pipeline.Storage.Postgres.Tests;

/// <summary>The schema on open: created once, versioned, a newer one refused untouched.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresSchemaTests(PostgresServerFixture postgres)
{
    [Fact]
    public async Task Opening_an_empty_database_creates_the_schema_at_version_1()
    {
        var database = await postgres.CreateDatabaseAsync();
        await using (await PostgresStores.OpenAsync(database))
        {
        }

        Assert.Equal(1, await ScalarAsync(database, "select version from pipeline.schema_version"));
        Assert.Equal(["batches", "schema_version", "sessions"], await TablesAsync(database, "pipeline"));
    }

    [Fact]
    public async Task A_schema_newer_than_the_code_is_refused_naming_both_versions_and_left_as_it_was()
    {
        var database = await postgres.CreateDatabaseAsync();
        await using (var store = await PostgresStores.OpenAsync(database))
        {
            await store.EnqueueAsync([PostgresStores.Draft("s", "kept")], default);
        }

        await ScalarAsync(database, "update pipeline.schema_version set version = 7 returning version");

        var refused = await Assert.ThrowsAsync<StoreSchemaException>(() => PostgresStores.OpenAsync(database));
        Assert.Equal((7, 1), (refused.Found, refused.Supported));
        Assert.Contains("version 7", refused.Message, StringComparison.Ordinal);
        Assert.Contains("version 1", refused.Message, StringComparison.Ordinal);
        Assert.Equal(7, await ScalarAsync(database, "select version from pipeline.schema_version"));
        Assert.Equal(1L, await ScalarAsync(database, "select count(*) from pipeline.batches"));
    }

    [Fact]
    public async Task Eight_workers_opening_an_empty_database_at_once_all_open_one_schema()
    {
        var database = await postgres.CreateDatabaseAsync();
        var stores = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => PostgresStores.OpenAsync(database))));
        try
        {
            await stores[3].EnqueueAsync([PostgresStores.Draft("s", "a")], default);
            Assert.Single(await stores[5].ListAsync("s", default));
            Assert.Equal(1L, await ScalarAsync(database, "select count(*) from pipeline.schema_version"));
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Two_schemas_in_one_database_are_two_stores()
    {
        var database = await postgres.CreateDatabaseAsync();
        await using var blue = await PostgresStores.OpenAsync(database, "blue");
        await using var green = await PostgresStores.OpenAsync(database, "green");
        await blue.EnqueueAsync([PostgresStores.Draft("s", "blue")], default);

        Assert.Empty(await green.ListAsync("s", default));
        Assert.Equal(["blue"], (await blue.ListAsync("s", default)).Select(b => b.Text()));
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static async Task<List<string>> TablesAsync(string connectionString, string schema)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select tablename from pg_tables where schemaname = $1 order by 1", connection) { Parameters = { new NpgsqlParameter<string> { TypedValue = schema } } };
        await using var reader = await command.ExecuteReaderAsync();
        var tables = new List<string>();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }
}
