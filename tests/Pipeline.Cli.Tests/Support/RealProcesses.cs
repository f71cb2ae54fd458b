namespace Pipeline.Cli.Tests.Support;

/// <summary>
/// Tests that run the real binary and time it take turns: on two cores, processes started by
/// parallel test classes would measure each other's load, not the behaviour under test.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealProcesses
{
    public const string Name = "real pipeline processes";
}
