namespace Pipeline.Claiming;

/// <summary>What <see cref="RecentCommandIds.TryBegin"/> found.</summary>
internal enum RecentIdState
{
    /// <summary>The id was not held: it is now recorded as running, under the returned ticket.</summary>
    Recorded,

    /// <summary>A command with this id is running here now.</summary>
    Running,

    /// <summary>A command with this id finished here recently.</summary>
    Finished,
}

/// <summary>
/// The ids of commands this worker is running or has recently finished. A running id is pinned
/// (never evicted) until its delivery finishes or forgets it; finished ids are remembered up to a
/// fixed capacity, oldest evicted first. Each record carries a ticket, so only the delivery that
/// recorded an id can finish or forget it, never a later delivery's record of the same id.
/// </summary>
/// <remarks>
/// NoETL's duplicate notifications starved fresh work; a duplicate of a finished command is acked
/// and skipped at once. A nacked command is forgotten before its nack, so its redelivery runs.
/// </remarks>
internal sealed class RecentCommandIds
{
    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries;
    private readonly (string? Id, long Ticket)[] _finished;
    private long _nextTicket;
    private long _finishedCount;

    /// <param name="capacity">Finished ids remembered.</param>
    /// <param name="running">Expected running ids at once (the in-flight bound); only sizes the table.</param>
    public RecentCommandIds(int capacity, int running = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _entries = new Dictionary<string, Entry>(capacity + running, StringComparer.Ordinal);
        _finished = new (string?, long)[capacity];
    }

    /// <summary>Ids held, running and finished.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Records <paramref name="commandId"/> as running unless it is already held.</summary>
    public RecentIdState TryBegin(string commandId, out long ticket)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(commandId, out var held))
            {
                ticket = 0;
                return held.Running ? RecentIdState.Running : RecentIdState.Finished;
            }

            ticket = ++_nextTicket;
            _entries[commandId] = new Entry(ticket, Running: true);
            return RecentIdState.Recorded;
        }
    }

    /// <summary>The command recorded under <paramref name="ticket"/> finished: remember it as finished (evictable).</summary>
    public void Finish(string commandId, long ticket)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(commandId, out var held) || held.Ticket != ticket || !held.Running)
            {
                return;
            }

            _entries[commandId] = held with { Running = false };
            ref var slot = ref _finished[_finishedCount++ % _finished.Length];
            // Evict the slot's previous id unless it was forgotten or recorded again since.
            if (slot.Id is not null && _entries.TryGetValue(slot.Id, out var old) && old.Ticket == slot.Ticket && !old.Running)
            {
                _entries.Remove(slot.Id);
            }

            slot = (commandId, ticket);
        }
    }

    /// <summary>Forgets the record made under <paramref name="ticket"/>, so the command's next delivery runs.</summary>
    public void Forget(string commandId, long ticket)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(commandId, out var held) && held.Ticket == ticket)
            {
                _entries.Remove(commandId);
            }
        }
    }

    private readonly record struct Entry(long Ticket, bool Running);
}
