using System.Text.Json;
using Pipeline.Commands;

namespace Pipeline.Tests.Support;

internal static class TestCommands
{
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    public static Command Make(string id, string toolKind = "noop", string? inputJson = null, int attempts = 0, long executionId = 12345) =>
        new()
        {
            CommandId = id,
            ExecutionId = executionId,
            Step = "fetch",
            ToolKind = toolKind,
            Input = inputJson is null ? EmptyObject : JsonDocument.Parse(inputJson).RootElement.Clone(),
            Attempts = attempts,
        };
}
