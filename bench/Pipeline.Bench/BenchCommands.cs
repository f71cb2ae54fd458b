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

    /// <summary>The options of the <c>noop</c> throughput runs: the engine at its defaults but for dispatch parallelism and one pull.</summary>
    public static PipelineOptions NoopOptions(int dispatchParallelism) => new()
    {
        Dispatch = new BlockOptions { Parallelism = dispatchParallelism },
        MaxInFlight = 1024,
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
