using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary><c>noop</c>: succeeds at once with no result.</summary>
public sealed class NoopTool : ITool
{
    /// <inheritdoc/>
    public string Kind => "noop";

    /// <inheritdoc/>
    public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken) =>
        new(ToolResult.Success());
}
