using BenchmarkDotNet.Attributes;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Sources;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// I/O-bound: the <c>delay</c> tool (10 ms) at dispatch parallelism 256. Little's law bounds it
/// at 256 / 10 ms = 25,600 commands/s (39.06 µs per command); the target is 90% of that. Two
/// baselines in the same run show what the machine's timers allow: 256 loops of bare
/// <c>Task.Delay(10 ms)</c> (no pipeline at all), and the naive loop running the same tool.
/// </summary>
public class DelayBenchmarks() : InMemoryBenchmark(Count, "delay", """{"ms": 10}""")
{
    private const int Parallelism = 256;
    private const int Count = 25_600;
    private readonly ToolRegistry _tools = new([new DelayTool()]);

    [Benchmark(OperationsPerInvoke = Count, Description = "Pipeline, delay 10 ms, parallelism 256 (bound 25,600/s)")]
    public async Task Delay10msAt256()
    {
        var options = new PipelineOptions
        {
            Dispatch = new BlockOptions { Parallelism = Parallelism },
            PullParallelism = 1,
            WorkerId = "bench",
        };
        var pipeline = new CommandPipeline<DeliveryHandle>(Source, _tools, Sink, options);
        await pipeline.RunAsync(CancellationToken.None);
        Check(pipeline.Stats.Completed == Count && Source.Acked == Count);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Baseline: 256 loops of bare Task.Delay(10 ms) (the timer floor)")]
    public async Task BareDelayLoops()
    {
        var loops = new Task[Parallelism];
        for (var i = 0; i < loops.Length; i++)
        {
            loops[i] = Task.Run(static async () =>
            {
                for (var n = 0; n < Count / Parallelism; n++)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(10));
                }
            });
        }

        await Task.WhenAll(loops);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Baseline: naive loop, delay 10 ms (SemaphoreSlim(256) + task per command)")]
    public async Task NaiveLoop()
    {
        var tool = new DelayTool();
        using var slots = new SemaphoreSlim(Parallelism);
        var running = new List<Task>(Count);
        while (await Source.NextAsync(CancellationToken.None) is { } pulled)
        {
            await slots.WaitAsync();
            running.Add(Task.Run(async () =>
            {
                try
                {
                    await tool.InvokeAsync(pulled.Outcome.Command!, CancellationToken.None);
                    await Source.AckAsync(pulled.Handle, CancellationToken.None);
                }
                finally
                {
                    slots.Release();
                }
            }));
        }

        await Task.WhenAll(running);
        Check(Source.Acked == Count);
    }

}
