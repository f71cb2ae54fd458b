using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary>
/// <c>delay</c>: waits <c>{"ms": N}</c> milliseconds (0 to <see cref="int.MaxValue"/>, about
/// 24.8 days), then succeeds. Stands in for I/O-bound work.
/// </summary>
public sealed class DelayTool(TimeProvider? timeProvider = null) : ITool
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    /// <inheritdoc/>
    public string Kind => "delay";

    /// <inheritdoc/>
    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = ToolInput.RequireObject(Kind, command.Input);
        var ms = ToolInput.OptionalMilliseconds(Kind, input, "ms")
            ?? throw new ToolInputException("delay: input.ms is required.");
        if (ms > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(ms), _time, cancellationToken).ConfigureAwait(false);
        }

        return ToolResult.Success();
    }
}
