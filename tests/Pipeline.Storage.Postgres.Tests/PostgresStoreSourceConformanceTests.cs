namespace Pipeline.Storage.Postgres.Tests;

/// <summary>The store source over PostgreSQL (each case a fresh database on the collection's server) runs the source conformance suite, leases on the database's clock.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresStoreSourceConformanceTests(PostgresServerFixture postgres) : CommandSourceConformance<StoreHandle>
{
    protected override async ValueTask<CommandSourceBackend<StoreHandle>> CreateBackendAsync(IReadOnlyList<Pipeline.Commands.Command> seed, ConformanceSettings settings) =>
        await StoreSourceBackend.CreateAsync(await PostgresStores.OpenFreshAsync(postgres), seed, settings);
}
