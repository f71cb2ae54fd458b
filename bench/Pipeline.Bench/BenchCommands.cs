using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Engine;
using Pipeline.Events;

namespace Pipeline.Bench;

internal static class BenchCommands
{
    public static Command[] Make(int count, string toolKind, string inputJson)
    {
        var input = JsonDocument.Parse(inputJson).RootElement.Clone();
        var commands = new Command[count];
        for (var i = 0; i < commands.Length; i++)
        {
            commands[i] = new Command
            {
                CommandId = $"cmd-{i}",
                ExecutionId = i / 16,
                Step = "step",
                ToolKind = toolKind,
                Input = input,
            };
        }

        return commands;
    }

    /// <summary>An event as the pipeline would make it, for the baselines.</summary>
    public static PipelineEvent Event(Command command, string type, string status) => new()
    {
        EventType = type,
        Status = status,
        CreatedAt = DateTimeOffset.UtcNow,
        ExecutionId = command.ExecutionId,
        Step = command.Step,
        CommandId = command.CommandId,
        ToolKind = command.ToolKind,
        WorkerId = "bench",
        Attempts = command.Attempts,
    };

    /// <summary>The options of the <c>noop</c> throughput runs: queues wide enough that Dispatch is what is measured.</summary>
    public static PipelineOptions NoopOptions(int dispatchParallelism) => new()
    {
        Dispatch = new BlockOptions { Parallelism = dispatchParallelism },
        MaxInFlight = 1024,
        PullParallelism = 1,
        WorkerId = "bench",
    };

    /// <summary>The same for today's channel engine: each queue 1024 deep (about 3,000 held, as above).</summary>
    public static Legacy.PipelineOptions LegacyNoopOptions(int dispatchParallelism) => new()
    {
        Dispatch = new Legacy.BlockOptions { Parallelism = dispatchParallelism, Capacity = 1024 },
        Claim = new Legacy.BlockOptions { Capacity = 1024 },
        AckDecision = new Legacy.BlockOptions { Capacity = 1024 },
        Emit = new Legacy.BlockOptions { Capacity = 8192 },
        PullParallelism = 1,
        WorkerId = "bench",
    };
}

/// <summary>Counts every event delivered; the benchmarks check the count so no event is skipped unnoticed.</summary>
public sealed class CountingSink : IEventSink
{
    private long _count;

    public long Count => Volatile.Read(ref _count);

    public void Reset() => _count = 0;

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref _count, batch.Length);
        return ValueTask.CompletedTask;
    }
}
