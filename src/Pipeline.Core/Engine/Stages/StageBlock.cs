using System.Collections.Concurrent;
using System.Threading.Tasks.Dataflow;

namespace Pipeline.Engine.Stages;

/// <summary>
/// One stage's Dataflow block: an <see cref="ActionBlock{T}"/> with a synchronous delegate (the
/// block's lock-free fast path, about twice as fast per item as an asynchronous delegate) whose
/// work may still go asynchronous. At most <c>parallelism</c> items are in progress at once,
/// counting those that went asynchronous: an item that arrives while every slot is taken waits
/// in a park queue and is started by the next item to finish. At most as many run on threads at
/// once as there are cores; the rest of the slots are for work that is waiting asynchronously. <see cref="Completion"/> ends when
/// the block has completed and nothing is in progress or parked.
/// </summary>
/// <remarks>
/// The work delegate must not throw (each stage turns every failure into an outcome); if it does,
/// the block is faulted, which the pipeline treats as fatal and loud.
/// </remarks>
internal sealed class StageBlock<T>
{
    private readonly Func<T, ValueTask> _work;
    private readonly int _parallelism;
    private readonly ActionBlock<T> _block;
    private readonly ConcurrentQueue<T> _parked = new();
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inProgress;
    private int _blockDone;

    public StageBlock(Func<T, ValueTask> work, int parallelism)
    {
        _work = work;
        _parallelism = parallelism;
        _block = new ActionBlock<T>(Run, new ExecutionDataflowBlockOptions
        {
            // Synchronous work gains nothing from more threads than cores (and 16 block tasks on
            // 2 cores measured half the speed); work that goes asynchronous returns the thread
            // at once and keeps one of the `parallelism` slots until it is done.
            MaxDegreeOfParallelism = Math.Min(parallelism, Math.Max(1, Environment.ProcessorCount / 2)),
            EnsureOrdered = false,
        });
        _block.Completion.ContinueWith(
            static (task, state) => ((StageBlock<T>)state!).OnBlockCompleted(task),
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>Ends when the block has completed and its last item is done, or faults with the block.</summary>
    public Task Completion => _drained.Task;

    /// <summary>Offers an item; false when the block no longer accepts (completed or faulted).</summary>
    public bool Post(T item) => _block.Post(item);

    /// <summary>No more items: <see cref="Completion"/> ends once those in hand are done.</summary>
    public void Complete() => _block.Complete();

    private void Run(T item)
    {
        // Items already parked go first: park behind them whenever any wait.
        var behind = !_parked.IsEmpty;
        if (behind || Interlocked.Increment(ref _inProgress) > _parallelism)
        {
            if (!behind)
            {
                Interlocked.Decrement(ref _inProgress); // the increment above found every slot held
            }

            // Park, then look again in case a slot came free between the count and the park.
            _parked.Enqueue(item);
            StartParked();
            return;
        }

        Execute(item);
    }

    /// <summary>Runs <paramref name="item"/> in a slot already taken, then the parked items, while they complete synchronously.</summary>
    private void Execute(T item)
    {
        while (true)
        {
            ValueTask pending;
            try
            {
                pending = _work(item);
            }
            catch (Exception ex)
            {
                Fault(ex);
                pending = default;
            }

            if (!pending.IsCompleted)
            {
                _ = FinishAsync(pending);
                return;
            }

            Observe(pending);
            if (!_parked.TryDequeue(out item!))
            {
                ReleaseSlot();
                return;
            }
        }
    }

    private async Task FinishAsync(ValueTask pending)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Fault(ex);
        }

        if (_parked.TryDequeue(out var next))
        {
            Execute(next);
        }
        else
        {
            ReleaseSlot();
        }
    }

    private void ReleaseSlot()
    {
        Interlocked.Decrement(ref _inProgress);
        StartParked();
        if (Volatile.Read(ref _blockDone) != 0)
        {
            CheckDrained();
        }
    }

    private void StartParked()
    {
        while (!_parked.IsEmpty)
        {
            if (Interlocked.Increment(ref _inProgress) > _parallelism)
            {
                // The slots are held; whoever releases one starts the parked items.
                Interlocked.Decrement(ref _inProgress);
                return;
            }

            if (_parked.TryDequeue(out var item))
            {
                Execute(item);
                return;
            }

            Interlocked.Decrement(ref _inProgress);
        }
    }

    private void Observe(ValueTask completed)
    {
        try
        {
            completed.GetAwaiter().GetResult();
        }
        catch (Exception ex)
        {
            Fault(ex);
        }
    }

    /// <summary>Faults the block: it drops what it holds and declines more; the pipeline treats it as fatal.</summary>
    public void Fault(Exception exception) => ((IDataflowBlock)_block).Fault(exception);

    private void OnBlockCompleted(Task completion)
    {
        if (completion.IsFaulted)
        {
            _drained.TrySetException(completion.Exception!.InnerExceptions);
            return;
        }

        Interlocked.Exchange(ref _blockDone, 1); // a full fence: ReleaseSlot and this never both miss the other
        CheckDrained();
    }

    private void CheckDrained()
    {
        if (Volatile.Read(ref _inProgress) == 0 && _parked.IsEmpty)
        {
            _drained.TrySetResult();
        }
    }
}
