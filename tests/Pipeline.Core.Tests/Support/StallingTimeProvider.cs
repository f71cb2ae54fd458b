using Microsoft.Extensions.Time.Testing;

namespace Pipeline.Tests.Support;

/// <summary>
/// A fake clock whose timer callbacks can be held back, as a thread pool with no free thread holds
/// back every timer of the process: between <see cref="Stall"/> and <see cref="Resume"/> the
/// callbacks that come due wait, and then run one after another in the order they came due.
/// </summary>
internal sealed class StallingTimeProvider : FakeTimeProvider
{
    private readonly HeldCallbacks _held = new();
    private readonly Lock _gate = new();
    private bool _stalled;

    /// <summary>From now on, callbacks that come due wait for <see cref="Resume"/>.</summary>
    public void Stall()
    {
        lock (_gate)
        {
            _stalled = true;
        }
    }

    /// <summary>Runs the held callbacks, in the order they came due, on this thread; later ones run when due again.</summary>
    public void Resume()
    {
        lock (_gate)
        {
            _stalled = false;
        }

        _held.RunAll();
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        base.CreateTimer(s => Fire(callback, s), state, dueTime, period);

    private void Fire(TimerCallback callback, object? state)
    {
        lock (_gate)
        {
            if (_stalled)
            {
                _held.Hold(() => callback(state));
                return;
            }
        }

        callback(state);
    }
}
