using Pipeline.Storage.Sqlite.Tests.Support;

namespace Pipeline.Storage.Sqlite.Tests;

/// <summary>The store source over a SQLite file (in a temp folder) runs the source conformance suite, on the real clock (leases lapse for real).</summary>
public sealed class SqliteStoreSourceConformanceTests : CommandSourceConformance<StoreHandle>
{
    protected override async ValueTask<CommandSourceBackend<StoreHandle>> CreateBackendAsync(IReadOnlyList<Pipeline.Commands.Command> seed, ConformanceSettings settings)
    {
        var database = new TempDatabase();
        var store = await SqliteQueuedWorkStore.OpenAsync(database.Options);
        return await StoreSourceBackend.CreateAsync(store, seed, settings, () =>
        {
            database.Dispose();
            return ValueTask.CompletedTask;
        });
    }
}
