using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Polly;

namespace Pipeline.Storage;

/// <summary>
/// Writes the settles of many handles in one store call (one transaction): a single loop takes
/// what has queued up while the previous write ran, up to a batch, so the cost of a commit is
/// shared as the load grows. Each settle completes once its write is durable.
/// </summary>
internal sealed class SettleWriter : IAsyncDisposable
{
    private readonly IQueuedWorkStore _store;
    private readonly ResiliencePipeline _retry;
    private readonly int _batch;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new() { SingleReader = true });
    private readonly Task _loop;

    public SettleWriter(IQueuedWorkStore store, ResiliencePipeline retry, int batch, TimeSpan timeout, TimeProvider time, ILogger logger)
    {
        _store = store;
        _retry = retry;
        _batch = batch;
        _timeout = timeout;
        _time = time;
        _logger = logger;
        _loop = Task.Run(WriteLoopAsync);
    }

    public SettleCounts Counts { get; } = new();

    /// <summary>Queues <paramref name="settlement"/> and completes when it is written (or fenced out).</summary>
    public async ValueTask WriteAsync(BatchSettlement settlement, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<SettleStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new Pending(settlement, done, _time.GetTimestamp())))
        {
            throw new ObjectDisposedException(nameof(StoreCommandSource), "The store source is closed; the batch's lease lapses and it is claimed again.");
        }

        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        var pending = new List<Pending>(_batch);
        var settlements = new List<BatchSettlement>(_batch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (pending.Count < _batch && _queue.Reader.TryRead(out var next))
            {
                pending.Add(next);
                settlements.Add(next.Settlement);
            }

            try
            {
                await WriteBatchAsync(pending, settlements).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException && pending.Count > 1)
            {
                // A settle the store refused for good (a delay past the calendar, a reason the
                // database cannot hold) must not fail the others of its transaction: each again, alone.
                foreach (var item in pending.Where(p => !p.Done.Task.IsCompleted))
                {
                    try
                    {
                        await WriteBatchAsync([item], [item.Settlement]).ConfigureAwait(false);
                    }
                    catch (Exception alone)
                    {
                        Fail([item], alone);
                    }
                }
            }
            catch (Exception ex)
            {
                Fail(pending, ex);
            }

            pending.Clear();
            settlements.Clear();
        }
    }

    private async Task WriteBatchAsync(List<Pending> pending, List<BatchSettlement> settlements)
    {
        // Counted from the oldest settle's call, not from this write: one queued behind a write
        // that ran out its time gets what is left of its own, so every settle ends within the
        // timeout of its call (the bound the source states to the engine).
        var left = _timeout - _time.GetElapsedTime(pending[0].QueuedAt);
        using var deadline = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time);
        var results = await _retry.ExecuteAsync(
            static (state, ct) => state.Store.SettleAsync(state.Settlements, ct),
            (Store: _store, Settlements: settlements),
            deadline.Token).ConfigureAwait(false);
        for (var i = 0; i < pending.Count; i++)
        {
            Counts.Count(pending[i].Settlement.Kind, results[i]);
            if (results[i] == SettleStatus.FencedOut)
            {
                StoreLog.FencedOut(_logger, pending[i].Settlement.BatchId, pending[i].Settlement.Fence);
            }

            pending[i].Done.TrySetResult(results[i]);
        }
    }

    // Not written: each batch stays claimed until its lease lapses, then is claimed again.
    private void Fail(List<Pending> pending, Exception ex)
    {
        var error = ex is OperationCanceledException
            ? new TimeoutException($"The store could not be reached within {_timeout.TotalSeconds:0.###} s to settle {pending.Count} batches; their leases lapse and they are claimed again.", ex)
            : ex;
        StoreLog.SettleFailed(_logger, pending.Count, error);
        foreach (var item in pending)
        {
            item.Done.TrySetException(error);
        }
    }

    private readonly record struct Pending(BatchSettlement Settlement, TaskCompletionSource<SettleStatus> Done, long QueuedAt);
}

/// <summary>What the settles came to.</summary>
internal sealed class SettleCounts
{
    private long _completed;
    private long _abandoned;
    private long _deadLettered;
    private long _fencedOut;

    public long Completed => Interlocked.Read(ref _completed);

    public long Abandoned => Interlocked.Read(ref _abandoned);

    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    public long FencedOut => Interlocked.Read(ref _fencedOut);

    public void Count(SettleKind kind, SettleStatus status)
    {
        if (status == SettleStatus.FencedOut)
        {
            Interlocked.Increment(ref _fencedOut);
            return;
        }

        switch (kind)
        {
            case SettleKind.Complete: Interlocked.Increment(ref _completed); break;
            case SettleKind.Abandon: Interlocked.Increment(ref _abandoned); break;
            default: Interlocked.Increment(ref _deadLettered); break;
        }
    }
}
