using Pipeline.Tests.Sources.Support;

namespace Pipeline.Tests.Sources;

/// <summary>
/// Runs alone: the measure is the process's allocation counter, which a test running beside it
/// would add to. (xunit runs non-parallel collections after the parallel ones, one at a time.)
/// </summary>
[CollectionDefinition(nameof(JsonLinesSourceMemoryTests), DisableParallelization = true)]
public sealed class JsonLinesSourceMemoryCollection;

/// <summary>A hostile line costs the source a bounded amount of memory, whatever its length.</summary>
[Collection(nameof(JsonLinesSourceMemoryTests))]
public sealed class JsonLinesSourceMemoryTests(ITestOutputHelper output)
{
    private const long OneGiB = 1L << 30;

    // What the source may allocate while it reads a 1 GiB line and the line after it: the limit
    // (1 MiB) many times over, a 16th of the line. Reading the line whole would cost at least 1 GiB.
    private const long AllocationBound = 64L << 20;

    [Fact]
    public async Task A_1_GiB_line_is_reported_and_skipped_without_being_held()
    {
        var after = """{"command_id":"after","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""";
        var stream = new GeneratedStream((byte)'a', OneGiB, Encoding.UTF8.GetBytes($"\n{after}\n"));
        await using var source = JsonLinesFileSource.Open(stream, "generated");

        var before = GC.GetTotalAllocatedBytes(precise: true);
        var failed = (await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromMinutes(2)))!.Value;
        var valid = (await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromMinutes(2)))!.Value;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        output.WriteLine($"allocated {allocated:N0} bytes reading {stream.BytesRead:N0}");

        Assert.Equal(ClaimOutcomeKind.Failed, failed.Outcome.Kind);
        Assert.Equal("generated line 1: line is longer than the limit of 1048576 bytes (--max-line-bytes)", failed.Outcome.Reason);
        Assert.Equal("after", valid.Outcome.Command!.CommandId);
        Assert.Equal(stream.Length, stream.BytesRead);
        Assert.True(allocated < AllocationBound, $"the source allocated {allocated:N0} bytes for a 1 GiB line; the bound is {AllocationBound:N0}");
    }
}
