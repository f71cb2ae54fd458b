namespace Pipeline.Nats.Sources;

/// <summary>
/// Cheap deadlines for settle calls: one token per period (a quarter of the deadline), each
/// cancelled between <c>deadline × 0.75</c> and <c>deadline</c> after a call takes it. NATS.Net
/// waits for a reconnect before it sends an ack; a deadline keeps such a call from outliving the
/// settle that made it (a late ack would win over a later delivery's outcome). So the deadline is
/// an upper bound, never exceeded: a call may be cut up to a quarter early, which only shortens a
/// wait for a reconnect, but never runs past <see cref="NatsSourceOptions.SettleTimeout"/>, as
/// that option promises. One source per period, not one per call.
/// </summary>
internal sealed class DeadlineTokens : IDisposable
{
    private readonly TimeSpan _deadline;
    private readonly long _period;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private CancellationTokenSource _current;
    private long _currentUntil;

    public DeadlineTokens(TimeSpan deadline, TimeProvider time)
    {
        _deadline = deadline;
        _time = time;
        _period = (long)(deadline.TotalSeconds / 4 * time.TimestampFrequency);
        _current = new CancellationTokenSource(deadline, time);
        _currentUntil = time.GetTimestamp() + _period;
    }

    /// <summary>A token that fires about the deadline after now.</summary>
    public CancellationToken Next()
    {
        var now = _time.GetTimestamp();
        if (now < Volatile.Read(ref _currentUntil))
        {
            return _current.Token;
        }

        lock (_gate)
        {
            if (now >= _currentUntil)
            {
                // The old source cancels itself on its own timer; it is not disposed here, since a call may still hold its token.
                _current = new CancellationTokenSource(_deadline, _time);
                Volatile.Write(ref _currentUntil, now + _period);
            }

            return _current.Token;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _current.Dispose();
        }
    }
}
