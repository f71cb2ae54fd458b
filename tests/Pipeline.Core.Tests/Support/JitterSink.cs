namespace Pipeline.Tests.Support;

/// <summary>
/// A healthy event sink whose writes take a random, seeded amount of time: some return at once,
/// some yield, some wait a millisecond. Keeps every event in arrival order.
/// </summary>
internal sealed class JitterSink(int seed) : IEventSink
{
    private readonly Random _random = new(seed);
    private readonly ConcurrentQueue<PipelineEvent> _events = new();
    private int _writes;

    public int Writes => Volatile.Read(ref _writes);

    public IReadOnlyList<PipelineEvent> Events => [.. _events];

    public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _writes);
        int roll;
        lock (_random)
        {
            roll = _random.Next(3);
        }

        // Copy before any wait, as a sink that hands the batch on would; the memory is only lent.
        foreach (var e in batch.Span)
        {
            _events.Enqueue(e);
        }

        if (roll == 1)
        {
            await Task.Yield();
        }
        else if (roll == 2)
        {
            await Task.Delay(1, cancellationToken);
        }
    }
}
