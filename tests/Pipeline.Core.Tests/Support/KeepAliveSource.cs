namespace Pipeline.Tests.Support;

/// <summary>What became of one settle call.</summary>
internal enum SettleResult
{
    /// <summary>The source took the settle.</summary>
    Accepted,

    /// <summary>The token passed in was already cancelled: the settle never reached the source.</summary>
    Refused,

    /// <summary>The call threw (an injected fault): the settle did not reach the source.</summary>
    Failed,

    /// <summary>The call never returned (an injected hang that ignores its token).</summary>
    Pending,
}

/// <summary>One settle call as the source saw it; <see cref="At"/> is a timestamp of the source's clock.</summary>
internal sealed record SettleCall(long Handle, SettleKind Kind, SettleResult Result, long At);

/// <summary>One keep-alive call; <see cref="End"/> is null while it runs.</summary>
internal sealed record Renewal(long Start, long? End);

/// <summary>
/// A test source with every capability (keep-alive, delayed nack, terminate) that watches how the
/// pipeline treats each handle: every settle call with its outcome and time, every renewal with
/// its start and end, and the violations it can see for itself: a second settle call, two
/// renewals of one handle at once, a renewal that begins after the handle's settle began, and a
/// renewal still running when the settle began.
/// </summary>
/// <remarks>
/// <para>Items are added with <see cref="Enqueue(ClaimOutcome)"/> while the pipeline runs;
/// <see cref="NextAsync"/> waits for one, and returns null once <see cref="Complete"/> was called
/// and nothing is left (with <see cref="RedeliverOnNack"/>: nothing ready, nothing waiting to come
/// back and no handle unsettled).</para>
/// <para>With <see cref="RedeliverOnNack"/> the source behaves like a broker that acks by message
/// (JetStream): the command id is the message; a nack brings the message back (after the delay)
/// with <c>attempts + 1</c> unless the message was acked or terminated in the meantime, and a
/// message has at most one redelivery waiting.</para>
/// </remarks>
internal sealed class KeepAliveSource :
    ICommandSource<long>,
    ISupportsKeepAlive<long>,
    ISupportsDelayedNack<long>,
    ISupportsTerminate<long>
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly Queue<ClaimOutcome> _ready = new();
    private readonly List<HandleState> _handles = [];
    private readonly HashSet<string> _doneMessages = new(StringComparer.Ordinal);
    private readonly HashSet<string> _waitingMessages = new(StringComparer.Ordinal);
    private readonly List<ITimer> _timers = [];
    private readonly List<(string Kind, string Text)> _violations = [];
    private readonly TaskCompletionSource _never = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _complete;
    private int _timersWaiting;
    private int _droppedNacks;

    /// <param name="time">The clock of every timestamp, of delayed redeliveries and of slow renewals.</param>
    public KeepAliveSource(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <inheritdoc/>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long each renewal takes (on the source's clock); the wait honours the renewal's token.</summary>
    public TimeSpan RenewalDuration { get; init; }

    /// <summary>Settles and renewals throw <see cref="OperationCanceledException"/> when handed an already-cancelled token.</summary>
    public bool HonourTokens { get; init; }

    /// <summary>A nack brings the item back, by message (see the remarks on the class).</summary>
    public bool RedeliverOnNack { get; init; }

    /// <summary>Acks of these handles never return and ignore their token.</summary>
    public Func<long, bool>? HangAck { get; init; }

    /// <summary>Acks of these handles throw.</summary>
    public Func<long, bool>? FailAck { get; init; }

    /// <summary>Handles handed out so far.</summary>
    public int Pulled
    {
        get
        {
            lock (_gate)
            {
                return _handles.Count;
            }
        }
    }

    /// <summary>Everything the source saw that a pipeline must never do.</summary>
    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_gate)
            {
                return [.. _violations.Select(v => v.Text)];
            }
        }
    }

    /// <summary>The violations by kind: how many of each, with the first example.</summary>
    public string ViolationSummary()
    {
        lock (_gate)
        {
            return string.Join("; ", _violations.GroupBy(v => v.Kind).Select(g => $"{g.Key}: {g.Count()} (first: {g.First().Text})"));
        }
    }

    /// <summary>Nacks that brought nothing back because the message was already done or waiting.</summary>
    public int DroppedNacks
    {
        get
        {
            lock (_gate)
            {
                return _droppedNacks;
            }
        }
    }

    /// <summary>Acks the source took.</summary>
    public int AcceptedAcks => CountCalls(c => c.Kind == SettleKind.Acked && c.Result == SettleResult.Accepted);

    /// <summary>Settle calls that threw or were refused.</summary>
    public int FailedSettleCalls => CountCalls(c => c.Result is SettleResult.Failed or SettleResult.Refused);

    public void Enqueue(Command command) => Enqueue(ClaimOutcome.Claimed(command));

    public void Enqueue(ClaimOutcome outcome)
    {
        lock (_gate)
        {
            if (_complete)
            {
                throw new InvalidOperationException("The source is complete.");
            }

            _ready.Enqueue(outcome);
            SignalLocked();
        }
    }

    /// <summary>No more items will be added.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _complete = true;
            SignalLocked();
        }
    }

    /// <summary>The outcome handle <paramref name="handle"/> was delivered with.</summary>
    public ClaimOutcome OutcomeOf(long handle)
    {
        lock (_gate)
        {
            return _handles[(int)handle].Outcome;
        }
    }

    /// <summary>Every settle call made for <paramref name="handle"/>.</summary>
    public IReadOnlyList<SettleCall> SettlesOf(long handle)
    {
        lock (_gate)
        {
            return [.. _handles[(int)handle].Settles];
        }
    }

    /// <summary>Every renewal of <paramref name="handle"/>.</summary>
    public IReadOnlyList<Renewal> RenewalsOf(long handle)
    {
        lock (_gate)
        {
            return [.. _handles[(int)handle].Renewals];
        }
    }

    /// <summary>When <paramref name="handle"/> was handed out (source clock timestamp).</summary>
    public long PulledAt(long handle)
    {
        lock (_gate)
        {
            return _handles[(int)handle].PulledAt;
        }
    }

    /// <summary>The handles that did not get exactly one settle call that the source took, each with what it got.</summary>
    public IReadOnlyList<string> NotSettledExactlyOnce(Func<long, bool>? except = null)
    {
        lock (_gate)
        {
            var wrong = new List<string>();
            foreach (var state in _handles)
            {
                if (except?.Invoke(state.Handle) == true)
                {
                    continue;
                }

                if (state.Settles is not [{ Result: SettleResult.Accepted }])
                {
                    wrong.Add($"handle {state.Handle} ({state.Outcome.Command?.CommandId ?? "no command"}): {Describe(state.Settles)}");
                }
            }

            return wrong;
        }
    }

    /// <summary>Lets hung acks return, so a pipeline left running by a failed test can wind down.</summary>
    public void ReleaseHangs() => _never.TrySetResult();

    public async ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Task changed;
            lock (_gate)
            {
                if (_ready.TryDequeue(out var outcome))
                {
                    var handle = (long)_handles.Count;
                    _handles.Add(new HandleState(handle, outcome, _time.GetTimestamp()));
                    return new Pulled<long>(outcome, handle);
                }

                if (_complete && _timersWaiting == 0 && (!RedeliverOnNack || _handles.TrueForAll(h => h.Settles.Count > 0)))
                {
                    return null;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public ValueTask AckAsync(long handle, CancellationToken cancellationToken) =>
        Settle(handle, SettleKind.Acked, TimeSpan.Zero, cancellationToken);

    public ValueTask NackAsync(long handle, CancellationToken cancellationToken) =>
        Settle(handle, SettleKind.Nacked, TimeSpan.Zero, cancellationToken);

    public ValueTask NackAsync(long handle, TimeSpan delay, CancellationToken cancellationToken) =>
        Settle(handle, SettleKind.NackedWithDelay, delay, cancellationToken);

    public ValueTask TerminateAsync(long handle, string reason, CancellationToken cancellationToken) =>
        Settle(handle, SettleKind.Terminated, TimeSpan.Zero, cancellationToken);

    public async ValueTask KeepAliveAsync(long handle, CancellationToken cancellationToken)
    {
        int index;
        HandleState state;
        lock (_gate)
        {
            state = Find(handle, "renewal");
            if (state.SettleBegan)
            {
                _violations.Add(("renewal after settle", $"handle {handle}: a renewal began after its settle began"));
            }

            if (++state.RenewalsRunning > 1)
            {
                _violations.Add(("concurrent renewals", $"handle {handle}: {state.RenewalsRunning} renewals at once"));
            }

            index = state.Renewals.Count;
            state.Renewals.Add(new Renewal(_time.GetTimestamp(), null));
        }

        try
        {
            if (HonourTokens)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            if (RenewalDuration > TimeSpan.Zero)
            {
                await Task.Delay(RenewalDuration, _time, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_gate)
            {
                state.RenewalsRunning--;
                state.Renewals[index] = state.Renewals[index] with { End = _time.GetTimestamp() };
            }
        }
    }

    private ValueTask Settle(long handle, SettleKind kind, TimeSpan delay, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var state = Find(handle, kind.ToString());
            if (state.Settles.Count > 0)
            {
                _violations.Add(("second settle call", $"handle {handle}: a second settle call ({kind}) after {Describe(state.Settles)}"));
            }

            if (state.RenewalsRunning > 0)
            {
                _violations.Add(("renewal overlapping settle", $"handle {handle}: {kind} began while {state.RenewalsRunning} renewal(s) still ran"));
            }

            state.SettleBegan = true;
            var now = _time.GetTimestamp();
            if (HonourTokens && cancellationToken.IsCancellationRequested)
            {
                state.Settles.Add(new SettleCall(handle, kind, SettleResult.Refused, now));
                SignalLocked();
                return ValueTask.FromCanceled(cancellationToken);
            }

            if (kind == SettleKind.Acked && HangAck?.Invoke(handle) == true)
            {
                state.Settles.Add(new SettleCall(handle, kind, SettleResult.Pending, now));
                return new ValueTask(_never.Task);
            }

            if (kind == SettleKind.Acked && FailAck?.Invoke(handle) == true)
            {
                state.Settles.Add(new SettleCall(handle, kind, SettleResult.Failed, now));
                SignalLocked();
                return ValueTask.FromException(new IOException($"injected ack failure for handle {handle}"));
            }

            state.Settles.Add(new SettleCall(handle, kind, SettleResult.Accepted, now));
            var message = state.Outcome.Command?.CommandId ?? $"#{handle}";
            if (kind is SettleKind.Acked or SettleKind.Terminated)
            {
                _doneMessages.Add(message);
            }
            else if (RedeliverOnNack)
            {
                Redeliver(message, state.Outcome, delay);
            }

            SignalLocked();
            return ValueTask.CompletedTask;
        }
    }

    private void Redeliver(string message, ClaimOutcome outcome, TimeSpan delay)
    {
        if (_doneMessages.Contains(message) || !_waitingMessages.Add(message))
        {
            _droppedNacks++;
            return;
        }

        var again = outcome.Command is { } command
            ? ClaimOutcome.Claimed(command with { Attempts = command.Attempts + 1 })
            : outcome;
        if (delay <= TimeSpan.Zero)
        {
            _waitingMessages.Remove(message);
            _ready.Enqueue(again);
            return;
        }

        _timersWaiting++;
        _timers.Add(_time.CreateTimer(
            _ =>
            {
                lock (_gate)
                {
                    _timersWaiting--;
                    _waitingMessages.Remove(message);
                    if (!_doneMessages.Contains(message))
                    {
                        _ready.Enqueue(again);
                    }

                    SignalLocked();
                }
            },
            null,
            delay,
            Timeout.InfiniteTimeSpan));
    }

    private HandleState Find(long handle, string call)
    {
        if (handle < 0 || handle >= _handles.Count)
        {
            _violations.Add(("unknown handle", $"{call} of unknown handle {handle}"));
            throw new ArgumentOutOfRangeException(nameof(handle), handle, "unknown handle");
        }

        return _handles[(int)handle];
    }

    private int CountCalls(Func<SettleCall, bool> predicate)
    {
        lock (_gate)
        {
            return _handles.Sum(h => h.Settles.Count(predicate));
        }
    }

    private void SignalLocked()
    {
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private static string Describe(List<SettleCall> settles) =>
        settles.Count == 0 ? "never settled" : string.Join(", ", settles.Select(s => $"{s.Kind} {s.Result}"));

    private sealed class HandleState(long handle, ClaimOutcome outcome, long pulledAt)
    {
        public long Handle { get; } = handle;

        public ClaimOutcome Outcome { get; } = outcome;

        public long PulledAt { get; } = pulledAt;

        public List<SettleCall> Settles { get; } = [];

        public List<Renewal> Renewals { get; } = [];

        public int RenewalsRunning { get; set; }

        public bool SettleBegan { get; set; }
    }
}
