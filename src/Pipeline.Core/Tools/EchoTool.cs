using System.Runtime.InteropServices;
using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary>
/// <c>echo</c>: succeeds with its input as the result. An input whose JSON is longer than the
/// output limit (<see cref="BuiltInToolOptions.MaxOutputBytes"/>, 64 KiB by default) is not
/// copied: the result is <c>{"truncated": true, "input_bytes": N}</c>.
/// </summary>
public sealed class EchoTool : ITool
{
    private readonly int _maxOutputBytes;

    /// <summary>Creates the tool with the default output limit (64 KiB).</summary>
    public EchoTool()
        : this(BuiltInToolOptions.DefaultMaxOutputBytes)
    {
    }

    /// <summary>Creates the tool with an output limit from 1 to <see cref="BuiltInToolOptions.HardMaxOutputBytes"/>.</summary>
    public EchoTool(int maxOutputBytes) =>
        _maxOutputBytes = BuiltInToolOptions.ValidateMaxOutputBytes(maxOutputBytes, nameof(maxOutputBytes));

    /// <inheritdoc/>
    public string Kind => "echo";

    /// <inheritdoc/>
    public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = command.Input;

        // The raw bytes' length is read in place: no copy on the hot path.
        if (input.ValueKind == JsonValueKind.Undefined || JsonMarshal.GetRawUtf8Value(input).Length <= _maxOutputBytes)
        {
            return new(ToolResult.Success(input));
        }

        var size = JsonMarshal.GetRawUtf8Value(input).Length;
        return new(ToolResult.Success(JsonResult.Build(size, static (w, n) =>
        {
            w.WriteStartObject();
            w.WriteBoolean("truncated", true);
            w.WriteNumber("input_bytes", n);
            w.WriteEndObject();
        })));
    }
}
