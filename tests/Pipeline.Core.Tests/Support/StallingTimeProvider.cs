using Microsoft.Extensions.Time.Testing;

namespace Pipeline.Tests.Support;

/// <summary>
/// A fake clock whose timer callbacks can be held back, as a thread pool with no free thread holds
/// back every timer of the process: between <see cref="Stall"/> and <see cref="Resume"/> the
/// callbacks that come due wait, and then run one after another in the order they came due.
/// </summary>
internal sealed class StallingTimeProvider : FakeTimeProvider
{
    private readonly Queue<(TimerCallback Callback, object? State)> _held = new();
    private bool _stalled;

    /// <summary>From now on, callbacks that come due wait for <see cref="Resume"/>.</summary>
    public void Stall()
    {
        lock (_held)
        {
            _stalled = true;
        }
    }

    /// <summary>Runs the held callbacks, in the order they came due, on this thread; later ones run when due again.</summary>
    public void Resume()
    {
        lock (_held)
        {
            _stalled = false;
        }

        while (true)
        {
            (TimerCallback Callback, object? State) next;
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

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        base.CreateTimer(s => Fire(callback, s), state, dueTime, period);

    private void Fire(TimerCallback callback, object? state)
    {
        lock (_held)
        {
            if (_stalled)
            {
                _held.Enqueue((callback, state));
                return;
            }
        }

        callback(state);
    }
}
