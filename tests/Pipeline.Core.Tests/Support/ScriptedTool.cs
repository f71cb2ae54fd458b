namespace Pipeline.Tests.Support;

/// <summary>A tool whose behaviour the test supplies.</summary>
internal sealed class ScriptedTool(string kind, Func<Command, CancellationToken, ValueTask<ToolResult>> run) : ITool
{
    public string Kind => kind;

    public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken) => run(command, cancellationToken);
}
