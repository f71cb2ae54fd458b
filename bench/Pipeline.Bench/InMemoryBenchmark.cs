using BenchmarkDotNet.Attributes;
using Pipeline.Commands;
using Pipeline.Sources;

namespace Pipeline.Bench;

/// <summary>
/// What the benchmark classes share: the commands, made once; a fresh in-memory source and a
/// reset counting sink before every iteration; and a check that every command was handled.
/// </summary>
public abstract class InMemoryBenchmark(int count, string toolKind, string inputJson)
{
    private Command[] _commands = [];

    protected InMemoryCommandSource Source { get; private set; } = null!;

    protected CountingSink Sink { get; } = new();

    [GlobalSetup]
    public void MakeCommands() => _commands = BenchCommands.Make(count, toolKind, inputJson);

    [IterationSetup]
    public void FreshSource()
    {
        Source = InMemoryCommandSource.From(_commands);
        Sink.Reset();
    }

    /// <summary>The commands, for baselines that bypass the source.</summary>
    protected IReadOnlyList<Command> Commands => _commands;

    /// <summary>Throws when a benchmark skipped work, so a fast wrong result is never recorded.</summary>
    protected static void Check(bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException("The benchmark did not handle every command.");
        }
    }
}
