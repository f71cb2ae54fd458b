using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Pipeline.Claiming;

/// <summary>What <see cref="RecentCommandIds.TryBegin"/> found.</summary>
internal enum RecentIdState
{
    /// <summary>The id was not held: it is now recorded as running, under the returned ticket.</summary>
    Recorded,

    /// <summary>A command with this id is running here now.</summary>
    Running,

    /// <summary>A command with this id ran here recently.</summary>
    Finished,
}

/// <summary>
/// The ids of commands this worker is running or has recently run. Each id is recorded by one
/// delivery (identified by its pool slot) under a ticket; it is running while that delivery
/// holds the ticket, and a running id is never evicted. Besides the running ones, the most recent
/// <c>capacity</c> ids are remembered, oldest evicted first. Only the delivery that recorded an id
/// can forget it, never a later delivery's record of the same id.
/// </summary>
/// <remarks>
/// NoETL's duplicate notifications starved fresh work; a duplicate of a finished command is acked
/// and skipped at once. An id is recorded only once its claim is granted (a claim answered retry
/// later, failed or already claimed records nothing), and a nacked command is forgotten before its
/// nack, so its redelivery runs.
/// Finishing is one write to the slot's ticket (Emit does it for every item), so only Claim takes
/// a lock, and large caches are split into shards by hash so parallel claims rarely meet.
/// </remarks>
internal sealed class RecentCommandIds
{
    private const int ShardedFrom = 1024;
    private const int ShardCount = 16;
    private readonly Shard[] _shards;

    // The ticket each delivery slot holds while its command runs; 0 when none.
    private readonly long[] _running;
    private long _nextTicket;

    /// <param name="capacity">Ids remembered besides the running ones.</param>
    /// <param name="slots">Delivery slots (the in-flight bound): at most this many ids run at once.</param>
    public RecentCommandIds(int capacity, int slots)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        _running = new long[slots];
        var shards = capacity >= ShardedFrom ? ShardCount : 1;
        _shards = new Shard[shards];
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new Shard(this, (capacity + shards - 1) / shards, (slots + shards - 1) / shards);
        }
    }

    /// <summary>Ids held, running and finished.</summary>
    public int Count => _shards.Sum(shard => shard.Count);

    /// <summary>
    /// Records <paramref name="commandId"/> as run by delivery <paramref name="slot"/>, unless it is
    /// already held. For <see cref="RecentIdState.Recorded"/>, <paramref name="ticket"/> is the new
    /// record's; for <see cref="RecentIdState.Running"/>, it and <paramref name="holder"/> name the
    /// record and the delivery slot of the command running now.
    /// </summary>
    public RecentIdState TryBegin(string commandId, int slot, out long ticket, out int holder) =>
        ShardOf(commandId).TryBegin(commandId, slot, out ticket, out holder);

    /// <summary>
    /// What <see cref="TryBegin"/> would find, recording nothing: <see cref="RecentIdState.Recorded"/>
    /// when the id is not held. For a claim that takes time, asked before it, so a duplicate of a
    /// running or finished command costs no claim; the id is recorded only once the claim is granted.
    /// </summary>
    public RecentIdState Peek(string commandId, out long ticket, out int holder) =>
        ShardOf(commandId).Peek(commandId, out ticket, out holder);

    /// <summary>The delivery in <paramref name="slot"/> is done: the id it recorded is no longer running (it stays remembered).</summary>
    public void Finish(int slot) => Volatile.Write(ref _running[slot], 0);

    /// <summary>Forgets the record made under <paramref name="ticket"/>, so the command's next delivery runs.</summary>
    public void Forget(string commandId, int slot, long ticket) => ShardOf(commandId).Forget(commandId, slot, ticket);

    private bool IsRunning(in Entry entry) => Volatile.Read(ref _running[entry.Slot]) == entry.Ticket;

    private Shard ShardOf(string commandId) =>
        _shards.Length == 1 ? _shards[0] : _shards[(int)((uint)StringComparer.Ordinal.GetHashCode(commandId) % ShardCount)];

    private sealed class Shard(RecentCommandIds owner, int capacity, int slots)
    {
        private readonly Dictionary<string, Entry> _entries = new(capacity + slots, StringComparer.Ordinal);

        // Every held id has a place in the ring; the hand evicts the oldest id that is not running.
        // With room for the running ones on top of the capacity, it finds one at the first step or so.
        private (string? Id, long Ticket)[] _ring = new (string?, long)[capacity + slots];
        private int _hand;

        public int Count
        {
            get
            {
                lock (_entries)
                {
                    return _entries.Count;
                }
            }
        }

        public RecentIdState TryBegin(string commandId, int slot, out long ticket, out int holder)
        {
            lock (_entries)
            {
                // One hash lookup finds or adds the entry.
                ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, commandId, out var held);
                if (held)
                {
                    ticket = entry.Ticket;
                    holder = entry.Slot;
                    return owner.IsRunning(entry) ? RecentIdState.Running : RecentIdState.Finished;
                }

                holder = slot;
                ticket = Interlocked.Increment(ref owner._nextTicket);
                entry = new Entry(ticket, slot);
                Volatile.Write(ref owner._running[slot], ticket);
                TakeRingSlot() = (commandId, ticket);
                return RecentIdState.Recorded;
            }
        }

        public RecentIdState Peek(string commandId, out long ticket, out int holder)
        {
            lock (_entries)
            {
                if (_entries.TryGetValue(commandId, out var entry))
                {
                    ticket = entry.Ticket;
                    holder = entry.Slot;
                    return owner.IsRunning(entry) ? RecentIdState.Running : RecentIdState.Finished;
                }

                ticket = 0;
                holder = -1;
                return RecentIdState.Recorded;
            }
        }

        public void Forget(string commandId, int slot, long ticket)
        {
            lock (_entries)
            {
                ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, commandId);
                if (!Unsafe.IsNullRef(ref entry) && entry.Ticket == ticket)
                {
                    _entries.Remove(commandId);
                }

                if (Volatile.Read(ref owner._running[slot]) == ticket)
                {
                    Volatile.Write(ref owner._running[slot], 0);
                }
            }
        }

        /// <summary>The next ring place whose id may go: forgotten, recorded again since, or finished.</summary>
        private ref (string? Id, long Ticket) TakeRingSlot()
        {
            for (var step = 0; step < _ring.Length; step++)
            {
                ref var place = ref _ring[_hand];
                _hand = (_hand + 1) % _ring.Length;
                if (place.Id is null)
                {
                    return ref place;
                }

                // One lookup in the common case: take the old id out, and put it back in the rare
                // case it must stay (recorded again since under another place, or still running).
                if (!_entries.Remove(place.Id, out var old) || old.Ticket != place.Ticket)
                {
                    if (old.Ticket != 0 && old.Ticket != place.Ticket)
                    {
                        _entries[place.Id] = old;
                    }

                    return ref place; // forgotten, or recorded again under a newer place
                }

                if (!owner.IsRunning(old))
                {
                    return ref place;
                }

                _entries[place.Id] = old;
            }

            // Every place holds a running id (a shard the hash made busier than its share): grow.
            var grown = new (string?, long)[_ring.Length * 2];
            Array.Copy(_ring, _hand, grown, 0, _ring.Length - _hand);
            Array.Copy(_ring, 0, grown, _ring.Length - _hand, _hand);
            _hand = _ring.Length;
            _ring = grown;
            return ref _ring[_hand++];
        }
    }

    private readonly record struct Entry(long Ticket, int Slot);
}
