namespace Pipeline.Storage.Postgres.Tests;

/// <summary>
/// The PostgreSQL store runs the store conformance suite, each case on a fresh database whose clock
/// the suite moves at once (<see cref="DatabaseClock"/>) instead of waiting for it.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresQueuedWorkStoreConformanceTests(PostgresServerFixture postgres, ITestOutputHelper output) : QueuedWorkStoreConformance(output)
{
    protected override async ValueTask<QueuedWorkStoreBackend> CreateBackendAsync()
    {
        var clock = await DatabaseClock.InstallAsync(await postgres.CreateDatabaseAsync(), TimeSpan.Zero);
        return new PostgresStoreBackend(await PostgresStores.OpenAsync(clock.ConnectionString), clock);
    }

    private sealed class PostgresStoreBackend(PostgresQueuedWorkStore store, DatabaseClock clock) : QueuedWorkStoreBackend
    {
        public override IQueuedWorkStore Store => store;

        public override async ValueTask<DateTimeOffset> NowAsync() => await clock.NowAsync();

        public override Task AdvanceAsync(TimeSpan span) => clock.AdvanceAsync(span);

        public override ValueTask DisposeAsync() => store.DisposeAsync();
    }
}
