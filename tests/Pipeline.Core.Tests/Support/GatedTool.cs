using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tests.Support;

/// <summary>
/// A tool that waits until the test releases it or its token is cancelled (a timeout, the
/// shutdown deadline). Never released, it stands in for a tool that hangs.
/// </summary>
internal sealed class GatedTool(string kind) : ITool
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _started;
    private int _ended;

    public string Kind => kind;

    /// <summary>Invocations that have begun.</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>Invocations that have returned or thrown.</summary>
    public int Ended => Volatile.Read(ref _ended);

    /// <summary>Lets every waiting and future invocation succeed.</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _started);
        try
        {
            await _release.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return ToolResult.Success();
        }
        finally
        {
            Interlocked.Increment(ref _ended);
        }
    }
}
