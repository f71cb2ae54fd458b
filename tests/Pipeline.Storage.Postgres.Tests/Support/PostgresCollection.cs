namespace Pipeline.Storage.Postgres.Tests.Support;

/// <summary>
/// Every test that needs the real server is in this collection: they share one cluster (each class
/// its own database) and take turns, because the restart tests take the whole server down.
/// (xunit finds collection definitions only in the test assembly itself.)
/// </summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServerFixture>
{
    public const string Name = "postgres";
}
