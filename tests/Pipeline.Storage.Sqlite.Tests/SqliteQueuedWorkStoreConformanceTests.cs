using Pipeline.Storage.Sqlite.Tests.Support;

namespace Pipeline.Storage.Sqlite.Tests;

/// <summary>The SQLite store runs the store conformance suite, each case on a new temp file and a fake clock.</summary>
public sealed class SqliteQueuedWorkStoreConformanceTests(ITestOutputHelper output) : QueuedWorkStoreConformance(output)
{
    protected override async ValueTask<QueuedWorkStoreBackend> CreateBackendAsync()
    {
        var database = new TempDatabase();
        var time = new FakeTimeProvider();
        var store = await SqliteQueuedWorkStore.OpenAsync(database.Options, time);
        return new FakeClockStoreBackend(store, time, database.Dispose);
    }
}
