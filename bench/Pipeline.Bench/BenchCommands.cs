using System.Text.Json;
using Pipeline.Commands;
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
}

/// <summary>Counts every event delivered; the benchmarks check the count so no event is skipped unnoticed.</summary>
internal sealed class CountingSink : IEventSink
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
