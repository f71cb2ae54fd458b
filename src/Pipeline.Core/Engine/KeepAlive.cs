using Pipeline.Sources;

namespace Pipeline.Engine;

/// <summary>
/// Renews one delivery's handle from pull to settle, for sources whose deliveries expire. One
/// renewal at a time (a tick that finds one running is skipped); <see cref="StopAsync"/> stops
/// the timer and waits for a renewal in progress, so no renewal reaches the source after the
/// settle. Made once per pooled delivery, its timer reused across pulls.
/// </summary>
internal sealed class KeepAlive<THandle>
{
    private readonly ISupportsKeepAlive<THandle> _source;
    private readonly TimeSpan _interval;
    private readonly CancellationToken _token;
    private readonly PipelineStats _stats;
    private readonly Action<Exception> _onError;
    private readonly ITimer _timer;
    private readonly object _gate = new();
    private THandle _handle = default!;
    private bool _active;
    private Task? _renewal;

    public KeepAlive(ISupportsKeepAlive<THandle> source, TimeSpan interval, TimeProvider time, CancellationToken token, PipelineStats stats, Action<Exception> onError)
    {
        _source = source;
        _interval = interval;
        _token = token;
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
            _timer.Change(_interval, _interval);
        }
    }

    /// <summary>Stops renewing; completes when no renewal is in progress (bounded by the caller).</summary>
    public Task StopAsync()
    {
        lock (_gate)
        {
            _active = false;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _handle = default!;
            return _renewal ?? Task.CompletedTask;
        }
    }

    public void Dispose() => _timer.Dispose();

    private void Tick()
    {
        THandle handle;
        lock (_gate)
        {
            if (!_active || _renewal is not null)
            {
                return;
            }

            handle = _handle;
            // Set under the lock before the call starts, so a settle that stops us sees it and waits.
            _renewal = RenewAsync(handle);
        }
    }

    private async Task RenewAsync(THandle handle)
    {
        await Task.Yield(); // never renew on the timer's own callback, nor inside the lock
        try
        {
            await _source.KeepAliveAsync(handle, _token).ConfigureAwait(false);
            _stats.Increment(StatCounter.Renewals);
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
                _renewal = null;
            }
        }
    }
}
