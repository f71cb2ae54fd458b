using System.Buffers;
using System.Numerics;
using System.Threading.Channels;
using Pipeline.Events;

namespace Pipeline.Bench.Legacy;

/// <summary>A batch of events on its way to the Emit block; its array is pooled.</summary>
internal readonly record struct EventBatch(PipelineEvent[] Events, int Count)
{
    public ReadOnlyMemory<PipelineEvent> Memory => Events.AsMemory(0, Count);

    public void Return() => ArrayPool<PipelineEvent>.Shared.Return(Events, clearArray: true);
}

/// <summary>
/// One worker's outgoing events. Events are gathered into a pooled batch and handed to the Emit
/// block as one queue write when the batch is full or before the worker would wait (an empty
/// input queue, a full output queue, a tool that did not finish at once), so events are batched
/// under load and still go out promptly when the worker is idle or blocked. One worker's events
/// keep their order.
/// </summary>
internal sealed class EventBuffer(ChannelWriter<EventBatch> queue, int batchSize)
{
    private const int SmallestBatch = 16;
    private PipelineEvent[]? _events;
    private int _count;

    // The size of the next batch to rent: what the last flush carried. A worker that flushes a
    // few events per item (a slow tool) rents small arrays; one under load rents full batches.
    private int _sizeHint = SmallestBatch;

    public void Add(in PipelineEvent e)
    {
        _events ??= ArrayPool<PipelineEvent>.Shared.Rent(_sizeHint);
        if (_count == _events.Length)
        {
            // One item can add several events past a nearly full batch: grow rather than lose one.
            var larger = ArrayPool<PipelineEvent>.Shared.Rent(_events.Length * 2);
            _events.AsSpan().CopyTo(larger);
            ArrayPool<PipelineEvent>.Shared.Return(_events, clearArray: true);
            _events = larger;
        }

        _events[_count++] = e;
    }

    /// <summary>True when the batch should go now rather than wait for the worker to idle.</summary>
    public bool IsFull => _count >= batchSize;

    public ValueTask FlushAsync()
    {
        if (_count == 0)
        {
            return ValueTask.CompletedTask;
        }

        var batch = new EventBatch(_events!, _count);
        _sizeHint = Math.Clamp((int)BitOperations.RoundUpToPowerOf2((uint)_count), SmallestBatch, Math.Max(SmallestBatch, batchSize));
        _events = null;
        _count = 0;
        return queue.TryWrite(batch) ? ValueTask.CompletedTask : queue.WriteAsync(batch, CancellationToken.None);
    }
}
