using Pipeline.Storage;
using Pipeline.Testing.Conformance;

namespace Pipeline.Tests.Storage;

/// <summary>The in-memory store runs the store conformance suite on a fake clock.</summary>
public sealed class InMemoryQueuedWorkStoreConformanceTests(ITestOutputHelper output) : QueuedWorkStoreConformance(output)
{
    protected override ValueTask<QueuedWorkStoreBackend> CreateBackendAsync()
    {
        var time = new FakeTimeProvider();
        return new(new FakeClockStoreBackend(new InMemoryQueuedWorkStore(time), time));
    }
}
