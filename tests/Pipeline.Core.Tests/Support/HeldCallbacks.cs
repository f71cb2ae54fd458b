namespace Pipeline.Tests.Support;

/// <summary>
/// Callbacks held back, as a thread pool with no free thread holds back its work items, and run
/// later, in the order they were held, on the thread that lets them go.
/// </summary>
internal sealed class HeldCallbacks
{
    private readonly Queue<Action> _held = new();

    /// <summary>How many wait to run.</summary>
    public int Count
    {
        get
        {
            lock (_held)
            {
                return _held.Count;
            }
        }
    }

    public void Hold(Action callback)
    {
        lock (_held)
        {
            _held.Enqueue(callback);
        }
    }

    /// <summary>Runs the held callbacks in order on this thread, one held while they run included; outside the lock, so a callback may hold another.</summary>
    public void RunAll()
    {
        while (true)
        {
            Action next;
            lock (_held)
            {
                if (!_held.TryDequeue(out next!))
                {
                    return;
                }
            }

            next();
        }
    }
}
