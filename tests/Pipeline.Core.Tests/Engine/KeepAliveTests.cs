using Microsoft.Extensions.Time.Testing;
using Pipeline.Engine;
using Pipeline.Sources;

namespace Pipeline.Tests.Engine;

public sealed class KeepAliveTests
{
    /// <summary>
    /// A renewal hops to the thread pool before it calls the source. When the pool has no free
    /// thread the hop can wait longer than the settle waits for the renewal (half its budget): the
    /// settle then goes ahead, and the renewal, once it runs, must not reach the source, whether or
    /// not the source honours the cancelled token it is handed. Seen in a loaded run of the hostile
    /// callee test: a settle began 5 ms after a renewal that had waited 150 ms for its thread.
    /// </summary>
    [Fact]
    public async Task A_renewal_stopped_while_it_waits_for_a_thread_never_reaches_the_source()
    {
        var time = new FakeTimeProvider();
        var source = new CountingKeepAliveSource();
        var stats = new PipelineStats(static () => default, time);
        var keepAlive = new KeepAlive<long>(source, source.KeepAliveInterval, time, stats, static _ => { });
        var noFreeThread = new HeldPosts();
        keepAlive.Start(7);

        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(noFreeThread);
        try
        {
            time.Advance(source.KeepAliveInterval); // the tick starts a renewal, whose hop waits
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        Assert.Equal(1, noFreeThread.Held);
        var renewal = keepAlive.StopAsync(); // the settle stops the keep-alive and waits for the renewal
        noFreeThread.RunHeld(); // the hop gets its thread
        await renewal.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, source.Calls);
        keepAlive.Dispose();
    }

    /// <summary>A keep-alive source that counts the renewals that reach it and ignores its token.</summary>
    private sealed class CountingKeepAliveSource : ISupportsKeepAlive<long>
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public TimeSpan KeepAliveInterval => TimeSpan.FromSeconds(1);

        public ValueTask KeepAliveAsync(long handle, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A context whose posts wait until <see cref="RunHeld"/>: a thread pool with no free thread.</summary>
    private sealed class HeldPosts : SynchronizationContext
    {
        private readonly Queue<(SendOrPostCallback Callback, object? State)> _held = new();

        public int Held
        {
            get
            {
                lock (_held)
                {
                    return _held.Count;
                }
            }
        }

        public override void Post(SendOrPostCallback d, object? state)
        {
            lock (_held)
            {
                _held.Enqueue((d, state));
            }
        }

        public void RunHeld()
        {
            while (true)
            {
                (SendOrPostCallback Callback, object? State) next;
                lock (_held)
                {
                    if (!_held.TryDequeue(out next))
                    {
                        return;
                    }
                }

                next.Callback(next.State);
            }
        }
    }
}
