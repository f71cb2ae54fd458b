namespace Pipeline.Tests.Support;

/// <summary>
/// A gated tool that watches for two invocations of one command id running at once. Each
/// invocation waits for <see cref="Release"/> (or its token), then returns what
/// <paramref name="result"/> says for that command's n-th invocation (1-based).
/// </summary>
internal sealed class TrackingTool(string kind, Func<Command, int, ToolResult>? result = null) : ITool
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, int> _running = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _invocations = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _violations = new();
    private int _started;

    public string Kind => kind;

    /// <summary>Invocations begun.</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>Each time one command id ran twice at once.</summary>
    public IReadOnlyCollection<string> Violations => _violations;

    /// <summary>Invocations of <paramref name="commandId"/> begun.</summary>
    public int InvocationsOf(string commandId) => _invocations.GetValueOrDefault(commandId);

    /// <summary>Lets every waiting and future invocation finish.</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        var nth = _invocations.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
        var running = _running.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
        if (running > 1)
        {
            _violations.Enqueue($"{command.CommandId}: {running} invocations at once (invocation {nth})");
        }

        Interlocked.Increment(ref _started);
        try
        {
            await _release.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return result?.Invoke(command, nth) ?? ToolResult.Success();
        }
        finally
        {
            _running.AddOrUpdate(command.CommandId, 0, static (_, n) => n - 1);
        }
    }
}
