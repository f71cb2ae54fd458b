using Pipeline.Events;

namespace Pipeline.Bench;

/// <summary>
/// Counts events and stops the run once every command's three are in: the NATS and store sources
/// never run dry by themselves, so a benchmark over them ends here.
/// </summary>
internal sealed class StoppingSink(long expected) : IEventSink
{
    private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _count;

    /// <summary>The pipeline's stop request, called once every event is in.</summary>
    public Action? Stop { get; set; }

    public Task AllWritten => _all.Task;

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        if (Interlocked.Add(ref _count, batch.Length) >= expected)
        {
            _all.TrySetResult();
            Stop?.Invoke();
        }

        return ValueTask.CompletedTask;
    }
}
