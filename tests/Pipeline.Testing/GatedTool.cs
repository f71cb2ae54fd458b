using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Testing;

/// <summary>
/// A tool that waits until the test releases it or its token is cancelled (a timeout, the
/// shutdown deadline); once released it takes <paramref name="duration"/>, or the command's
/// <c>input.ms</c> when it has one. Never released, it stands in for a tool that hangs.
/// </summary>
/// <param name="kind">The tool kind it registers as (default <c>gated</c>).</param>
/// <param name="duration">How long a released run takes (default none).</param>
public sealed class GatedTool(string kind = "gated", TimeSpan duration = default) : ITool
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _started;
    private int _ended;

    public string Kind => kind;

    /// <summary>Invocations that have begun.</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>Invocations that have returned or thrown.</summary>
    public int Ended => Volatile.Read(ref _ended);

    /// <summary>Lets every waiting and future invocation go on.</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _started);
        try
        {
            await _release.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            var wait = command.Input.ValueKind == JsonValueKind.Object && command.Input.TryGetProperty("ms", out var ms) ? TimeSpan.FromMilliseconds(ms.GetInt32()) : duration;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            }

            return ToolResult.Success();
        }
        finally
        {
            Interlocked.Increment(ref _ended);
        }
    }
}
