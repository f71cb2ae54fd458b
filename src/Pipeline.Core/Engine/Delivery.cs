using System.Diagnostics;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Events;

namespace Pipeline.Engine;

/// <summary>What <see cref="Delivery{THandle}.TryHold"/> did with a duplicate.</summary>
internal enum HoldResult
{
    /// <summary>Held until the original's path is done.</summary>
    Held,

    /// <summary>The original's path is done already: claim the duplicate again now.</summary>
    Gone,

    /// <summary>The original's tool started (acked): the duplicate is skipped now.</summary>
    Started,
}

/// <summary>Where a delivery is now; read (racily, which is fine) by the stats poll.</summary>
internal enum DeliveryPosition
{
    Free,
    Pulling,
    ClaimQueued,

    /// <summary>A duplicate held until the delivery running its command is done (then claimed again).</summary>
    Held,
    Claiming,
    DecideQueued,
    Deciding,
    DispatchQueued,
    Dispatching,
    EmitQueued,
    Emitting,

    /// <summary>Taken from a queue by the stop's hand-back: no block may work on it again.</summary>
    HandedBack,
}

/// <summary>
/// One pulled item and everything it owns from pull to the end of its path: the handle (settled
/// exactly once, guarded here), its keep-alive, the command id it recorded, the events it
/// produced, and its tool's cancellation. Deliveries are pooled: there are at most
/// <see cref="PipelineOptions.MaxInFlight"/> of them, and a free delivery is the credit the Pull
/// block needs before it calls <c>NextAsync</c>.
/// </summary>
internal sealed class Delivery<THandle>
{
    /// <summary>Most events one delivery produces (claimed, started, then completed or failed).</summary>
    public const int MaxEvents = 3;

    private const int FreeState = 0;
    private const int PullingState = 1;
    private const int OpenState = 2;
    private const int SettledState = 3;

    private readonly PipelineEvent[] _events = new PipelineEvent[MaxEvents];
    private List<Delivery<THandle>>? _waiting;
    private bool _waitingClosed;
    private int _state;
    private int _pendingEmits;

    public Delivery(int slot)
    {
        Slot = slot;
    }

    /// <summary>This delivery's fixed place in the pool.</summary>
    public int Slot { get; }

    public THandle Handle = default!;
    public ClaimOutcome Outcome;

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the pull.</summary>
    public long PulledAt;

    public DeliveryPosition Position;

    /// <summary>
    /// Takes the delivery from a queue: true for exactly one of the block that dequeues it and the
    /// stop's hand-back, whichever comes first (the other finds it gone and leaves it alone).
    /// </summary>
    public bool TryTake(DeliveryPosition queued, DeliveryPosition to) =>
        Interlocked.CompareExchange(ref Position, to, queued) == queued;

    /// <summary>The command id this delivery recorded in the recent-id cache, and its ticket; null when it recorded none.</summary>
    public string? RecordedId;
    public long RecordedTicket;

    /// <summary>Set by Claim when the command id was already held: a duplicate delivery.</summary>
    public RecentIdState Duplicate;

    /// <summary>
    /// A claimer other than the pass-through granted this delivery's claim: ownership kept outside
    /// the source, which a nack alone does not give back.
    /// </summary>
    public bool ClaimedElsewhere;

    /// <summary>Its claim could not be released at a stop: it is not handed back but runs here.</summary>
    public bool KeepClaim;

    /// <summary>When Ack-decision took the claim (for the <c>command.claimed</c> event).</summary>
    public DateTimeOffset ClaimedAt;

    /// <summary>How the handle was settled, once it was.</summary>
    public SettleAction SettledAs;

    /// <summary>Events handed to Emit so far (Dispatch sends the first ones early when a tool goes asynchronous).</summary>
    public int EventsPosted;

    /// <summary>This delivery's tool cancellation (timeout, shutdown deadline), made on its first dispatch.</summary>
    public ToolCancellation? Tools;

    /// <summary>Renews the handle while the delivery is open, for sources whose deliveries expire.</summary>
    public KeepAlive<THandle>? KeepAlive;

    /// <summary>The item's <c>process</c> span while someone listens (see <see cref="Telemetry.PipelineTelemetry"/>); ended when its path is done.</summary>
    public Activity? Span;

    public int EventCount { get; private set; }

    public ReadOnlySpan<PipelineEvent> Events => _events.AsSpan(0, EventCount);

    public bool IsOpen => Volatile.Read(ref _state) == OpenState;

    public Command? Command => Outcome.Command;

    /// <summary>Takes the free delivery for a pull.</summary>
    public void BeginPull()
    {
        Volatile.Write(ref _state, PullingState);
        Position = DeliveryPosition.Pulling;
    }

    /// <summary>The pull returned an item: the delivery now owns its handle, open until settled.</summary>
    public void Open(in Pulled<THandle> pulled, long pulledAt)
    {
        Handle = pulled.Handle;
        Outcome = pulled.Outcome;
        PulledAt = pulledAt;
        Volatile.Write(ref _state, OpenState);
    }

    /// <summary>The settle-once guard: true exactly once per pull, for whoever settles first.</summary>
    public bool TryBeginSettle(SettleAction action)
    {
        if (Interlocked.CompareExchange(ref _state, SettledState, OpenState) != OpenState)
        {
            return false;
        }

        SettledAs = action;
        return true;
    }

    public void AddEvent(in PipelineEvent e)
    {
        // The stages add at most three events per delivery (claimed, started, and how it ended).
        if (EventCount < MaxEvents)
        {
            _events[EventCount++] = e;
        }
    }

    /// <summary>Emit requests that will reference this delivery; it is released when the last is done.</summary>
    public void ExpectEmits(int count) => Volatile.Write(ref _pendingEmits, count);

    /// <summary>One Emit request is done; true when it was the last.</summary>
    public bool EmitDone() =>
        Volatile.Read(ref _pendingEmits) == 1 || Interlocked.Decrement(ref _pendingEmits) == 0;

    /// <summary>
    /// Holds <paramref name="duplicate"/> (a later delivery of this delivery's command) until this
    /// one's path is done. <see cref="HoldResult.Gone"/> when this delivery no longer runs the record
    /// <paramref name="ticket"/>; <see cref="HoldResult.Started"/>, holding nothing, when
    /// <paramref name="unlessAcked"/> and this one was acked already (its tool started: the duplicate
    /// may be acked and skipped at once).
    /// </summary>
    public HoldResult TryHold(Delivery<THandle> duplicate, long ticket, bool unlessAcked)
    {
        lock (_events)
        {
            if (_waitingClosed || RecordedTicket != ticket || RecordedId is null)
            {
                return HoldResult.Gone;
            }

            if (unlessAcked && SettledAs == SettleAction.Ack)
            {
                return HoldResult.Started;
            }

            (_waiting ??= []).Add(duplicate);
            return HoldResult.Held;
        }
    }

    /// <summary>This delivery's path is done: the duplicates it held, to be claimed again.</summary>
    public List<Delivery<THandle>>? ReleaseHeld()
    {
        lock (_events)
        {
            _waitingClosed = true;
            var held = _waiting;
            _waiting = null;
            return held;
        }
    }

    /// <summary>Ends the <c>process</c> span, once, whoever gets here first (the end of the path, or a strand).</summary>
    public void EndSpan()
    {
        if (Span is not null)
        {
            Interlocked.Exchange(ref Span, null)?.Dispose();
        }
    }

    /// <summary>Back to the pool: clears what it held so the pool keeps no command, handle or result alive.</summary>
    public void Reset()
    {
        Handle = default!;
        Outcome = default;
        Span = null;
        RecordedId = null;
        RecordedTicket = 0;
        Duplicate = RecentIdState.Recorded;
        ClaimedElsewhere = false;
        KeepClaim = false;
        SettledAs = SettleAction.None;
        EventsPosted = 0;
        _events.AsSpan(0, EventCount).Clear();
        EventCount = 0;
        _pendingEmits = 0;
        lock (_events)
        {
            _waitingClosed = false;
        }

        Position = DeliveryPosition.Free;
        Volatile.Write(ref _state, FreeState);
    }
}
