namespace Pipeline.Bench.Legacy;

/// <summary>
/// One Dispatch worker's cancellation for the tool it runs: the per-attempt timeout and the
/// shutdown deadline. The source is reused between commands, and the timeout timer is armed
/// only when a tool does not finish at once, so a tool that completes synchronously costs no
/// timer at all.
/// </summary>
internal sealed class ToolCancellation : IDisposable
{
    private readonly TimeProvider _time;
    private readonly CancellationToken _abort;
    private readonly CancellationTokenRegistration _abortRegistration;
    private CancellationTokenSource _current;

    public ToolCancellation(TimeProvider time, CancellationToken abort)
    {
        _time = time;
        _abort = abort;
        _current = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _abortRegistration = abort.UnsafeRegister(static state => ((ToolCancellation)state!).CancelCurrent(), this);
    }

    /// <summary>The token for the next attempt; already cancelled after the shutdown deadline.</summary>
    public CancellationToken Begin()
    {
        if (_abort.IsCancellationRequested)
        {
            CancelCurrent();
        }

        return _current.Token;
    }

    /// <summary>Starts the attempt's timeout clock.</summary>
    public void Arm(TimeSpan timeout) => _current.CancelAfter(timeout);

    /// <summary>Whether the attempt was cancelled by its timeout rather than by the shutdown deadline.</summary>
    public bool TimedOut => _current.IsCancellationRequested && !_abort.IsCancellationRequested;

    /// <summary>Ends the attempt: disarms the timer, or replaces a cancelled source.</summary>
    public void End()
    {
        if (!_current.TryReset())
        {
            var spent = _current;
            _current = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
            spent.Dispose();
        }
    }

    public void Dispose()
    {
        _abortRegistration.Dispose();
        _current.Dispose();
    }

    private void CancelCurrent()
    {
        try
        {
            Volatile.Read(ref _current).Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Replaced between the read and the cancel; Begin cancels the new one.
        }
    }
}
