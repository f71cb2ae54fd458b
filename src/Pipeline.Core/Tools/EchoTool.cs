using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary><c>echo</c>: succeeds with its input as the result.</summary>
public sealed class EchoTool : ITool
{
    /// <inheritdoc/>
    public string Kind => "echo";

    /// <inheritdoc/>
    public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        return new(ToolResult.Success(command.Input));
    }
}
