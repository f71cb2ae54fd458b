using Pipeline.Engine.Stages;

namespace Pipeline.Tests.Engine.Stages;

/// <summary>StageBlock, the block each stage runs on: its parallelism bound, the order it starts items in, and its completion.</summary>
public sealed class StageBlockTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task StageBlock_runs_at_most_parallelism_items_starts_them_in_order_and_completes_after_the_last(int parallelism)
    {
        var seed = Seeds.Or(20261211, output);
        const int items = 200_000;
        var random = new Random(seed);
        var modes = Enumerable.Range(0, items).Select(_ => random.Next(4)).ToArray(); // 0, 1: synchronous; 2: yields; 3: short sleep off-thread
        var started = new int[items];
        var order = 0;
        var inProgress = 0;
        var maxInProgress = 0;
        var done = 0;
        var outOfOrder = new ConcurrentQueue<string>();

        void Begin(int item)
        {
            started[item] = Interlocked.Increment(ref order);
            var now = Interlocked.Increment(ref inProgress);
            int seen;
            while (now > (seen = Volatile.Read(ref maxInProgress)) && Interlocked.CompareExchange(ref maxInProgress, now, seen) != seen)
            {
            }
        }

        void End()
        {
            Interlocked.Decrement(ref inProgress);
            Interlocked.Increment(ref done);
        }

        async ValueTask Slow(int mode)
        {
            if (mode == 2)
            {
                await Task.Yield();
            }
            else
            {
                await Task.Run(() => Thread.SpinWait(50));
            }

            End();
        }

        var block = new StageBlock<int>(item =>
        {
            Begin(item);
            if (modes[item] < 2)
            {
                End();
                return ValueTask.CompletedTask;
            }

            return Slow(modes[item]);
        }, parallelism);

        for (var i = 0; i < items; i++)
        {
            Assert.True(block.Post(i));
        }

        block.Complete();
        await block.Completion.WaitAsync(TimeSpan.FromSeconds(8));
        var doneAtCompletion = Volatile.Read(ref done);

        Assert.Equal(items, doneAtCompletion);
        Assert.True(maxInProgress <= parallelism, $"{maxInProgress} items in progress at once (parallelism {parallelism})");
        if (parallelism == 1)
        {
            // With one slot, items start in the order they were posted (Emit relies on this for a command's events).
            var firstInversion = Enumerable.Range(1, items - 1).FirstOrDefault(i => started[i] < started[i - 1]);
            Assert.True(firstInversion == 0, $"item {firstInversion} started before item {firstInversion - 1}");
        }
    }
}
