using BenchmarkDotNet.Attributes;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Sources;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// I/O-bound: the <c>delay</c> tool (10 ms) at dispatch parallelism 256. Little's law bounds it
/// at 256 / 10 ms = 25,600 commands/s (39.06 µs per command); the target is 90% of that.
/// </summary>
public class DelayBenchmarks
{
    private const int Count = 25_600;
    private Command[] _commands = [];
    private InMemoryCommandSource _source = null!;
    private readonly CountingSink _sink = new();
    private readonly ToolRegistry _tools = new([new DelayTool()]);

    [GlobalSetup]
    public void Setup() => _commands = BenchCommands.Make(Count, "delay", """{"ms": 10}""");

    [IterationSetup]
    public void FreshSource()
    {
        _source = InMemoryCommandSource.From(_commands);
        _sink.Reset();
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Pipeline, delay 10 ms, parallelism 256 (bound 25,600/s)")]
    public async Task Delay10msAt256()
    {
        var options = new PipelineOptions
        {
            Dispatch = new BlockOptions { Parallelism = 256, Capacity = 512 },
            PullParallelism = 1,
            WorkerId = "bench",
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(_source, _tools, _sink, options);
        await pipeline.RunAsync(CancellationToken.None);
        if (pipeline.Stats.Completed != Count)
        {
            throw new InvalidOperationException("The benchmark did not complete every command.");
        }
    }
}
