namespace Pipeline.Bench.Legacy;

/// <summary>
/// The ids of commands this worker is running or has finished, bounded to a fixed capacity
/// (oldest evicted first). A duplicate delivery of one of them is acked and skipped at once
/// instead of occupying a dispatch slot (NoETL's duplicate notifications starved fresh work).
/// A nacked command is forgotten, so its redelivery runs.
/// </summary>
internal sealed class RecentCommandIds
{
    private readonly object _gate = new();
    private readonly Dictionary<string, long> _sequenceById;
    private readonly (string Id, long Sequence)[] _ring;
    private long _nextSequence;

    public RecentCommandIds(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _sequenceById = new Dictionary<string, long>(capacity, StringComparer.Ordinal);
        _ring = new (string, long)[capacity];
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _sequenceById.Count;
            }
        }
    }

    /// <summary>Records <paramref name="commandId"/>; false when it is already recorded (a duplicate).</summary>
    public bool TryBegin(string commandId)
    {
        lock (_gate)
        {
            if (_sequenceById.ContainsKey(commandId))
            {
                return false;
            }

            var sequence = _nextSequence++;
            ref var slot = ref _ring[sequence % _ring.Length];
            // Evict the slot's previous id unless it was forgotten or recorded again since.
            if (slot.Id is not null && _sequenceById.TryGetValue(slot.Id, out var held) && held == slot.Sequence)
            {
                _sequenceById.Remove(slot.Id);
            }

            slot = (commandId, sequence);
            _sequenceById[commandId] = sequence;
            return true;
        }
    }

    /// <summary>Forgets <paramref name="commandId"/> so its next delivery runs.</summary>
    public void Forget(string commandId)
    {
        lock (_gate)
        {
            _sequenceById.Remove(commandId);
        }
    }
}
