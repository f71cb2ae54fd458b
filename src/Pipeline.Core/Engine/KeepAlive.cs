using Pipeline.Sources;

namespace Pipeline.Engine;

/// <summary>
/// Renews one delivery's handle from pull to settle, for sources whose deliveries expire. One
/// renewal at a time (a tick that finds one running is skipped). <see cref="StopAsync"/> stops
/// the timer and cancels a renewal in progress, returning it for the settle to await (bounded),
/// so no renewal reaches the source after the settle. Made once per pooled delivery, its timer
/// reused across pulls; a renewal that outlives its pull never holds up the next pull's renewals.
/// </summary>
internal sealed class KeepAlive<THandle>
{
    private readonly ISupportsKeepAlive<THandle> _source;
    private readonly TimeSpan _interval;
    private readonly PipelineStats _stats;
    private readonly Action<Exception> _onError;
    private readonly ITimer _timer;
    private readonly object _gate = new();
    private THandle _handle = default!;
    private bool _active;
    private int _pull;
    private Task? _renewal;
    private CancellationTokenSource? _renewalCancellation;

    public KeepAlive(ISupportsKeepAlive<THandle> source, TimeSpan interval, TimeProvider time, PipelineStats stats, Action<Exception> onError)
    {
        _source = source;
        _interval = interval;
        _stats = stats;
        _onError = onError;
        _timer = time.CreateTimer(static state => ((KeepAlive<THandle>)state!).Tick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Starts renewing <paramref name="handle"/> every interval.</summary>
    public void Start(THandle handle)
    {
        lock (_gate)
        {
            _handle = handle;
            _active = true;
            _pull++;
            _renewal = null; // one still running belongs to an earlier pull: it no longer holds up ticks
            _renewalCancellation = null;
            _timer.Change(_interval, _interval);
        }
    }

    /// <summary>Stops renewing and cancels a renewal in progress; the task completes when it has ended.</summary>
    public Task StopAsync()
    {
        lock (_gate)
        {
            if (!_active)
            {
                return Task.CompletedTask;
            }

            _active = false;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _handle = default!;
            _renewalCancellation?.Cancel();
            return _renewal ?? Task.CompletedTask;
        }
    }

    public void Dispose() => _timer.Dispose();

    private void Tick()
    {
        lock (_gate)
        {
            if (!_active || _renewal is not null)
            {
                return;
            }

            // Set under the lock before the call starts, so a settle that stops us sees it and waits.
            _renewalCancellation = new CancellationTokenSource();
            _renewal = RenewAsync(_handle, _pull, _renewalCancellation);
        }
    }

    private async Task RenewAsync(THandle handle, int pull, CancellationTokenSource cancellation)
    {
        await Task.Yield(); // never renew on the timer's own callback, nor inside the lock
        try
        {
            // Stopped while the hop waited for a pool thread (a busy or starved pool can make that
            // longer than the settle's wait for us): the settle has begun or is about to, and no
            // renewal may reach the source from here on, whether or not it honours its token.
            if (cancellation.IsCancellationRequested)
            {
                return;
            }

            await _source.KeepAliveAsync(handle, cancellation.Token).ConfigureAwait(false);
            _stats.Increment(StatCounter.Renewals);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // Stopped by the settle.
        }
        catch (Exception ex)
        {
            _stats.Increment(StatCounter.RenewalErrors);
            _onError(ex);
        }
        finally
        {
            lock (_gate)
            {
                if (_pull == pull)
                {
                    _renewal = null;
                    _renewalCancellation = null;
                }
            }

            cancellation.Dispose();
        }
    }
}
