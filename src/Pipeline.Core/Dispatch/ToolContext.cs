using System.Text.Json;
using Pipeline.Commands;

namespace Pipeline.Dispatch;

/// <summary>
/// What a <see cref="PipelineTool{TInput}"/> knows of the command it runs, besides its bound input:
/// the command itself and the parts of it a tool most often needs.
/// </summary>
public sealed class ToolContext
{
    /// <summary>Creates the context of <paramref name="command"/> (a test of a tool may make one).</summary>
    public ToolContext(Command command) => Command = command ?? throw new ArgumentNullException(nameof(command));

    /// <summary>The command, as pulled (its raw <see cref="Command.Input"/> included).</summary>
    public Command Command { get; }

    /// <summary>The command's <c>command_id</c>: the same on every redelivery, a key for idempotent work.</summary>
    public string CommandId => Command.CommandId;

    /// <summary>The command's <c>execution_id</c>.</summary>
    public long ExecutionId => Command.ExecutionId;

    /// <summary>The command's <c>step</c>.</summary>
    public string Step => Command.Step;

    /// <summary>The <c>tool_kind</c> the command was dispatched on: the kind this tool is registered under.</summary>
    public string ToolKind => Command.ToolKind;

    /// <summary>
    /// Which delivery of the command this is, counting from 1 (<c>attempts</c> + 1); in-process
    /// retries of a transient failure run under the same number.
    /// </summary>
    public int Attempt => Command.Attempts + 1;

    /// <summary>The command's <c>render_context</c>: variables already rendered against the step. Empty when absent.</summary>
    public IReadOnlyDictionary<string, JsonElement> RenderContext => Command.RenderContext;
}
