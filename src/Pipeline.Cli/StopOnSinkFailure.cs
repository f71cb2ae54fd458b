using Pipeline.Events;

namespace Pipeline.Cli;

/// <summary>
/// Stops the run at the events file's first failed write (a full disk, a closed pipe): commands
/// run on would leave no record. The failure is kept for the summary; what was done is counted.
/// </summary>
internal sealed class StopOnSinkFailure(IEventSink inner, Action stop) : IEventSink
{
    private Exception? _failure;

    /// <summary>The first write failure, or null.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        try
        {
            await inner.WriteAsync(batch, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (Interlocked.CompareExchange(ref _failure, ex, null) is null)
            {
                stop();
            }

            throw;
        }
    }
}
