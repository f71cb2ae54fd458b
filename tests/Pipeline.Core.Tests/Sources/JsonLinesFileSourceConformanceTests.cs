using System.Text;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Commands;
using Pipeline.Sources;
using Pipeline.Testing.Conformance;
using Pipeline.Tests.Sources.Support;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Sources;

/// <summary>The JSON Lines source over a file runs the conformance suite; below it, what only this source does.</summary>
public sealed class JsonLinesFileSourceConformanceTests : CommandSourceConformance<DeliveryHandle>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-source-").FullName;

    protected override ValueTask<CommandSourceBackend<DeliveryHandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings)
    {
        var path = Path.Combine(_directory, $"{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, seed.Select(c => c.ToJson()));
        return new(new QueuedSourceBackend(JsonLinesFileSource.Open(path)) { CountsPending = false });
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_malformed_line_fails_naming_its_line_and_the_run_goes_on()
    {
        var path = Path.Combine(_directory, "mixed.jsonl");
        File.WriteAllLines(path,
        [
            TestCommands.Make("ok-1").ToJson(),
            string.Empty,
            "{\"command_id\": \"broken\"",
            TestCommands.Make("ok-2").ToJson(),
        ]);
        await using var source = JsonLinesFileSource.Open(path);

        var outcomes = new List<ClaimOutcome>();
        while (await source.NextAsync(CancellationToken.None) is { } pulled)
        {
            outcomes.Add(pulled.Outcome);
            await source.AckAsync(pulled.Handle, CancellationToken.None);
        }

        Assert.Equal(3, outcomes.Count);
        Assert.Equal("ok-1", outcomes[0].Command!.CommandId);
        Assert.Equal(ClaimOutcomeKind.Failed, outcomes[1].Kind);
        Assert.Contains("mixed.jsonl line 3", outcomes[1].Reason, StringComparison.Ordinal);
        Assert.Equal("ok-2", outcomes[2].Command!.CommandId);
    }

    [Fact]
    public void A_missing_file_is_a_clear_error()
    {
        var error = Assert.Throws<FileNotFoundException>(() => JsonLinesFileSource.Open(Path.Combine(_directory, "absent.jsonl")));
        Assert.Contains("absent.jsonl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_delayed_nack_runs_on_the_clock_of_its_options()
    {
        var time = new FakeTimeProvider();
        var path = Path.Combine(_directory, "one.jsonl");
        File.WriteAllLines(path, [TestCommands.Make("c0").ToJson()]);
        await using var source = JsonLinesFileSource.Open(path, new JsonLinesSourceOptions { TimeProvider = time });
        await DelayedNackClock.AssertRedeliveredOnItsClockAsync(source, time);
    }
}

/// <summary>The JSON Lines source over a stream handing out a few bytes per read (lines straddle reads, CRLF endings) runs the conformance suite.</summary>
public sealed class JsonLinesStreamSourceConformanceTests : CommandSourceConformance<DeliveryHandle>
{
    protected override ValueTask<CommandSourceBackend<DeliveryHandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings)
    {
        var content = Encoding.UTF8.GetBytes(string.Concat(seed.Select(c => c.ToJson() + "\r\n")));
        return new(new QueuedSourceBackend(JsonLinesFileSource.Open(GeneratedStream.Of(content, chunk: 5), "stream")) { CountsPending = false });
    }
}
