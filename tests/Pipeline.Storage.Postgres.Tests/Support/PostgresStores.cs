using System.Text;

namespace Pipeline.Storage.Postgres.Tests.Support;

/// <summary>Stores over the collection's server: each test its own database unless it shares one on purpose.</summary>
public static class PostgresStores
{
    /// <summary>A store over a fresh database.</summary>
    public static async Task<PostgresQueuedWorkStore> OpenFreshAsync(PostgresServerFixture postgres) =>
        await PostgresQueuedWorkStore.OpenAsync(new PostgresStoreOptions { ConnectionString = await postgres.CreateDatabaseAsync() }, CancellationToken.None);

    /// <summary>A store over <paramref name="connectionString"/>'s database (a second one over the same database is a second worker).</summary>
    public static async Task<PostgresQueuedWorkStore> OpenAsync(string connectionString, string schema = "pipeline") =>
        await PostgresQueuedWorkStore.OpenAsync(new PostgresStoreOptions { ConnectionString = connectionString, Schema = schema }, CancellationToken.None);

    /// <summary>A draft whose payload is <paramref name="text"/> in UTF-8.</summary>
    public static QueuedBatchDraft Draft(string session, string text, string? key = null, DateTimeOffset? availableAt = null) =>
        new() { SessionId = session, Payload = Encoding.UTF8.GetBytes(text), IdempotencyKey = key, AvailableAt = availableAt };

    /// <summary>A batch's payload as text.</summary>
    public static string Text(this QueuedBatch batch) => Encoding.UTF8.GetString(batch.Payload.Span);

    /// <summary>A lease for <paramref name="owner"/>.</summary>
    public static LeaseRequest Lease(string owner, TimeSpan? timeToLive = null) =>
        new() { Owner = owner, TimeToLive = timeToLive ?? TimeSpan.FromSeconds(30) };

    /// <summary>The database's clock now.</summary>
    public static async Task<DateTimeOffset> DatabaseNowAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var now = new NpgsqlCommand("select clock_timestamp()", connection);
        await using var reader = await now.ExecuteReaderAsync();
        await reader.ReadAsync();
        return reader.GetFieldValue<DateTimeOffset>(0);
    }
}
