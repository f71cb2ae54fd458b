using System.Text.Json;
using Pipeline.Commands;

namespace Pipeline.Testing;

/// <summary>Commands for tests: a noop with an empty input unless told otherwise.</summary>
public static class TestCommands
{
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    public static Command Make(string id, string toolKind = "noop", string? inputJson = null, int attempts = 0, long executionId = 12345, string step = "fetch") =>
        new()
        {
            CommandId = id,
            ExecutionId = executionId,
            Step = step,
            ToolKind = toolKind,
            Input = inputJson is null ? EmptyObject : JsonDocument.Parse(inputJson).RootElement.Clone(),
            Attempts = attempts,
        };
}
