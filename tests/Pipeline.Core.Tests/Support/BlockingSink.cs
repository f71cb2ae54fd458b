namespace Pipeline.Tests.Support;

/// <summary>
/// An event sink whose every write blocks until <see cref="Release"/>: a dead downstream. The
/// honouring variant ends a write when its token is cancelled; the other ignores its token.
/// </summary>
internal sealed class BlockingSink(bool honourToken) : IEventSink
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _writes;
    private int _cancelled;

    /// <summary>Write calls begun.</summary>
    public int Writes => Volatile.Read(ref _writes);

    /// <summary>Writes that ended because their token was cancelled.</summary>
    public int Cancelled => Volatile.Read(ref _cancelled);

    /// <summary>Lets every blocked and future write return (cleanup after a failed test).</summary>
    public void Release() => _release.TrySetResult();

    public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _writes);
        if (!honourToken)
        {
            await _release.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            await _release.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _cancelled);
            throw;
        }
    }
}
