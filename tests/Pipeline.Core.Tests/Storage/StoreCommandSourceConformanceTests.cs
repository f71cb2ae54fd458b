using Pipeline.Storage;
using Pipeline.Testing.Conformance;

namespace Pipeline.Tests.Storage;

/// <summary>The store source over the in-memory store runs the source conformance suite on the real clock (leases lapse for real).</summary>
public sealed class StoreCommandSourceConformanceTests : CommandSourceConformance<StoreHandle>
{
    protected override async ValueTask<CommandSourceBackend<StoreHandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings) =>
        await StoreSourceBackend.CreateAsync(new InMemoryQueuedWorkStore(), seed, settings);
}
