namespace Pipeline.Tests.Support;

/// <summary>
/// Deterministic draws from a seed and a key (splitmix64): a handle's behaviour depends on the
/// seed and the handle, never on the interleaving or on a shared generator's lock.
/// </summary>
internal static class Draw
{
    public static ulong Hash(long seed, long a, long b = 0)
    {
        var x = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)a * 0xBF58476D1CE4E5B9UL ^ (ulong)b * 0x94D049BB133111EBUL);
        x = unchecked((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL);
        x = unchecked((x ^ (x >> 27)) * 0x94D049BB133111EBUL);
        return x ^ (x >> 31);
    }

    /// <summary>A number in [0, 1).</summary>
    public static double Unit(long seed, long a, long b = 0) => (Hash(seed, a, b) >> 11) * (1.0 / (1UL << 53));
}

/// <summary>What a source does with one settle call.</summary>
internal enum SourceSettle : byte
{
    /// <summary>Takes it at once.</summary>
    Accept,

    /// <summary>Takes it after going asynchronous (a network round trip).</summary>
    AcceptAsync,

    /// <summary>Throws from the call itself.</summary>
    Throw,

    /// <summary>Returns a faulted task.</summary>
    ThrowAsync,

    /// <summary>Never returns until its token is cancelled (or the test releases it).</summary>
    HangHonouringToken,

    /// <summary>Never returns, whatever its token does (until the test releases it).</summary>
    HangIgnoringToken,

    /// <summary>Takes it after a short round trip (<see cref="HostileSource.RoundTrip"/>) that honours the token when the source does.</summary>
    AcceptAfterRoundTrip,
}

/// <summary>What became of the first settle call of a handle, as the source saw it.</summary>
internal enum SettleFate
{
    None,

    /// <summary>The source took it.</summary>
    Accepted,

    /// <summary>Handed an already-cancelled token: it never reached the source.</summary>
    Refused,

    /// <summary>The call threw or faulted: it did not reach the source.</summary>
    Threw,

    /// <summary>The call is still hanging (it did not reach the source).</summary>
    Hanging,

    /// <summary>A hang that ended when its token was cancelled (it did not reach the source).</summary>
    CancelledWhileHanging,

    /// <summary>Went asynchronous and its token was cancelled before it completed (it did not reach the source).</summary>
    CancelledInFlight,
}

/// <summary>How the source saw the run's settle calls (first calls only; a second call is a violation).</summary>
/// <remarks>
/// <see cref="AcceptedLate"/> counts accepted calls (of any kind, included in the accepted counts)
/// that took longer than <see cref="HostileSource.LateAfter"/>: a pipeline may have given up on
/// them (its settle budget ran out) and counted them as settle errors.
/// </remarks>
internal readonly record struct SettleTally(int Pulled, int SettleCalls, int AcceptedAcks, int AcceptedNacks, int AcceptedTerminates, int AcceptedLate, int NotReached, int Hanging)
{
    public override string ToString() =>
        $"pulled {Pulled}, settle calls {SettleCalls}, accepted acks {AcceptedAcks}, accepted nacks {AcceptedNacks}, accepted terminates {AcceptedTerminates} ({AcceptedLate} accepted late), not reached {NotReached} ({Hanging} still hanging)";
}

/// <summary>
/// A lean source with every capability (keep-alive, delayed nack, terminate) for long randomized
/// runs: handles are sequential longs from a fixed plan, per-handle state is a few interlocked
/// integers (no lock on any path), and it records what a pipeline must never do: a second settle
/// call for a handle, a renewal that begins after the handle's settle began, a settle that begins
/// while a renewal of the handle still runs, two renewals of one handle at once, a settle handed
/// an already-cancelled token, a call for a handle it never handed out.
/// </summary>
/// <remarks>
/// The settle/renewal checks are a Dekker pair: each side announces itself with an interlocked
/// increment (a full fence) before it reads the other side's counter, so of a settle and a renewal
/// that overlap, at least one sees the other.
/// </remarks>
internal sealed class HostileSource :
    ICommandSource<long>,
    ISupportsKeepAlive<long>,
    ISupportsDelayedNack<long>,
    ISupportsTerminate<long>
{
    private const int ExamplesPerKind = 5;

    private readonly Func<long, ClaimOutcome> _outcomeOf;
    private readonly Func<long, SourceSettle> _settleOf;
    private readonly HandleRecord[] _records;
    private readonly long _seed;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopPoint = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, (int Count, ConcurrentQueue<string> Examples)> _violations = new(StringComparer.Ordinal);
    private long _next;
    private long _nextCalls;
    private long _renewals;
    private int _pullFaults;
    private int _settleHangs;
    private int _settlesAfterSlowRenewal;

    /// <param name="items">Handles the source hands out before it reports exhaustion.</param>
    /// <param name="seed">Seeds the per-call draws (pull faults, renewal behaviour).</param>
    /// <param name="outcomeOf">The outcome handle <c>h</c> is delivered with; called once per handle, from any thread.</param>
    /// <param name="settleOf">What the source does with handle <c>h</c>'s settle call.</param>
    public HostileSource(int items, long seed, Func<long, ClaimOutcome> outcomeOf, Func<long, SourceSettle> settleOf)
    {
        _outcomeOf = outcomeOf;
        _settleOf = settleOf;
        _seed = seed;
        _records = new HandleRecord[items];
        for (var i = 0; i < items; i++)
        {
            _records[i] = new HandleRecord();
        }
    }

    /// <inheritdoc/>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Next, settles and renewals throw <see cref="OperationCanceledException"/> when handed an already-cancelled token.</summary>
    public bool HonourTokens { get; init; }

    /// <summary>Renewals of these handles hang, ignoring their token, until the test releases them.</summary>
    public Func<long, bool>? HangRenewal { get; init; }

    /// <summary>How long a <see cref="SourceSettle.AcceptAfterRoundTrip"/> settle takes.</summary>
    public TimeSpan RoundTrip { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Share of <c>NextAsync</c> calls that throw.</summary>
    public double PullFaultRate { get; init; } = 0.005;

    /// <summary>Most settle calls that hang (the rest of the hang draws are accepted).</summary>
    public int SettleHangBudget { get; init; } = 2;

    /// <summary>An accepted settle call that took longer than this is counted as accepted late (see <see cref="SettleTally"/>).</summary>
    public TimeSpan LateAfter { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// How long a pipeline waits for a running renewal before it settles anyway (half its settle
    /// budget, so the settle call has the other half): a settle that begins while a renewal has run for less than this (minus timer
    /// slack) cut the wait short, a violation; one that begins after a renewal outran it is
    /// counted in <see cref="SettlesAfterRenewalOutranBudget"/>.
    /// </summary>
    public TimeSpan RenewalWaitBudget { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Settles that began while a renewal that had outrun <see cref="RenewalWaitBudget"/> still ran (allowed).</summary>
    public int SettlesAfterRenewalOutranBudget => Volatile.Read(ref _settlesAfterSlowRenewal);

    /// <summary>Handing out this handle completes <see cref="StopPoint"/>.</summary>
    public long StopAt { get; init; } = -1;

    /// <summary>Completes when handle <see cref="StopAt"/> has been handed out.</summary>
    public Task StopPoint => _stopPoint.Task;

    /// <summary>Handles handed out so far.</summary>
    public int Pulled => (int)Math.Min(Volatile.Read(ref _next), _records.Length);

    /// <summary>Keep-alive calls so far.</summary>
    public long Renewals => Volatile.Read(ref _renewals);

    /// <summary>NextAsync calls that threw by injection.</summary>
    public int PullFaults => Volatile.Read(ref _pullFaults);

    /// <summary>Everything the source saw that a pipeline must never do, by kind, with examples; empty when nothing.</summary>
    public string Violations() =>
        string.Join("\n", _violations.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => $"{v.Key}: {v.Value.Count} (e.g. {string.Join("; ", v.Value.Examples)})"));

    /// <summary>How many violations of <paramref name="kind"/> were seen.</summary>
    public int ViolationCount(string kind) => _violations.TryGetValue(kind, out var v) ? v.Count : 0;

    /// <summary>The handles handed out that did not get exactly one settle call, each described.</summary>
    public IReadOnlyList<string> NotSettledExactlyOnce(Func<long, string> describe)
    {
        var wrong = new List<string>();
        var pulled = Pulled;
        for (var h = 0; h < pulled; h++)
        {
            var calls = Volatile.Read(ref _records[h].SettleCalls);
            if (calls != 1)
            {
                wrong.Add($"handle {h} ({describe(h)}): {(calls == 0 ? "never settled" : $"{calls} settle calls")}");
            }
        }

        return wrong;
    }

    /// <summary>Settle calls made for <paramref name="handle"/>.</summary>
    public int SettleCallsOf(long handle) => Volatile.Read(ref _records[handle].SettleCalls);

    /// <summary>What became of the first settle call of <paramref name="handle"/>.</summary>
    public SettleFate FateOf(long handle) => (SettleFate)Volatile.Read(ref _records[handle].Fate);

    /// <summary>The settle calls so far, by what became of them.</summary>
    public SettleTally Tally()
    {
        int pulled = Pulled, calls = 0, acks = 0, nacks = 0, terminates = 0, late = 0, notReached = 0, hanging = 0;
        for (var h = 0; h < pulled; h++)
        {
            var record = _records[h];
            calls += Volatile.Read(ref record.SettleCalls);
            switch ((SettleFate)Volatile.Read(ref record.Fate))
            {
                case SettleFate.Accepted:
                    if (Volatile.Read(ref record.Late) != 0)
                    {
                        late++;
                    }

                    switch ((SettleKind)record.Kind)
                    {
                        case SettleKind.Acked:
                            acks++;
                            break;
                        case SettleKind.Terminated:
                            terminates++;
                            break;
                        default:
                            nacks++;
                            break;
                    }

                    break;
                case SettleFate.Hanging:
                    hanging++;
                    notReached++;
                    break;
                case SettleFate.None:
                    break;
                default:
                    notReached++;
                    break;
            }
        }

        return new SettleTally(pulled, calls, acks, nacks, terminates, late, notReached, hanging);
    }

    /// <summary>Lets hung settles return, so nothing the test started outlives it.</summary>
    public void ReleaseHangs() => _release.TrySetResult();

    public ValueTask<Pulled<long>?> NextAsync(CancellationToken cancellationToken)
    {
        if (HonourTokens && cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Pulled<long>?>(cancellationToken);
        }

        var call = Interlocked.Increment(ref _nextCalls);
        var roll = Draw.Unit(_seed, -1, call);
        if (roll < PullFaultRate)
        {
            Interlocked.Increment(ref _pullFaults);
            return roll < PullFaultRate / 2
                ? throw new IOException("injected NextAsync fault")
                : ValueTask.FromException<Pulled<long>?>(new IOException("injected NextAsync fault (async)"));
        }

        return roll < PullFaultRate + 0.03 ? NextLaterAsync(cancellationToken) : new ValueTask<Pulled<long>?>(Take());
    }

    public ValueTask AckAsync(long handle, CancellationToken cancellationToken) => Settle(handle, SettleKind.Acked, cancellationToken);

    public ValueTask NackAsync(long handle, CancellationToken cancellationToken) => Settle(handle, SettleKind.Nacked, cancellationToken);

    public ValueTask NackAsync(long handle, TimeSpan delay, CancellationToken cancellationToken) => Settle(handle, SettleKind.NackedWithDelay, cancellationToken);

    public ValueTask TerminateAsync(long handle, string reason, CancellationToken cancellationToken) => Settle(handle, SettleKind.Terminated, cancellationToken);

    public ValueTask KeepAliveAsync(long handle, CancellationToken cancellationToken)
    {
        var record = Find(handle, "renewal");
        Volatile.Write(ref record.RenewalStartedAt, Stopwatch.GetTimestamp()); // published by the increment below
        var running = Interlocked.Increment(ref record.RenewalsRunning);
        var renewal = Interlocked.Increment(ref record.Renewals);
        Interlocked.Increment(ref _renewals);
        if (running > 1)
        {
            Violation("concurrent renewals of one handle", $"handle {handle}: {running} renewals at once");
        }

        if (Volatile.Read(ref record.SettleCalls) > 0)
        {
            Violation("renewal begun after the handle's settle began", $"handle {handle}: renewal #{renewal} after its {(SettleKind)record.Kind} call");
        }

        if (HonourTokens && cancellationToken.IsCancellationRequested)
        {
            Interlocked.Decrement(ref record.RenewalsRunning);
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (HangRenewal?.Invoke(handle) == true)
        {
            return HangRenewalAsync(record);
        }

        var roll = Draw.Unit(_seed, handle, -renewal);
        if (roll < 0.03)
        {
            Interlocked.Decrement(ref record.RenewalsRunning);
            return ValueTask.FromException(new IOException($"injected renewal fault for handle {handle}"));
        }

        if (roll < 0.12)
        {
            return RenewLaterAsync(record, delay: roll < 0.05, HonourTokens ? cancellationToken : CancellationToken.None);
        }

        Interlocked.Decrement(ref record.RenewalsRunning);
        return ValueTask.CompletedTask;
    }

    private static async ValueTask RenewLaterAsync(HandleRecord record, bool delay, CancellationToken cancellationToken)
    {
        try
        {
            if (delay)
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await Task.Yield();
            }
        }
        finally
        {
            Interlocked.Decrement(ref record.RenewalsRunning);
        }
    }

    private async ValueTask HangRenewalAsync(HandleRecord record)
    {
        try
        {
            await _release.Task.ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref record.RenewalsRunning);
        }
    }

    private async ValueTask<Pulled<long>?> NextLaterAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (HonourTokens)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }

        return Take();
    }

    private Pulled<long>? Take()
    {
        long handle;
        do
        {
            handle = Volatile.Read(ref _next);
            if (handle >= _records.Length)
            {
                return null;
            }
        }
        while (Interlocked.CompareExchange(ref _next, handle + 1, handle) != handle);

        if (handle == StopAt)
        {
            _stopPoint.TrySetResult();
        }

        return new Pulled<long>(_outcomeOf(handle), handle);
    }

    private ValueTask Settle(long handle, SettleKind kind, CancellationToken cancellationToken)
    {
        var record = Find(handle, kind.ToString());
        var calls = Interlocked.Increment(ref record.SettleCalls);
        if (calls > 1)
        {
            Violation("second settle call for a handle", $"handle {handle}: call #{calls} ({kind}) after {(SettleKind)record.Kind} {(SettleFate)Volatile.Read(ref record.Fate)}");
            return ValueTask.CompletedTask;
        }

        record.Kind = (int)kind;
        var running = Volatile.Read(ref record.RenewalsRunning);
        if (running > 0)
        {
            var age = Stopwatch.GetElapsedTime(Volatile.Read(ref record.RenewalStartedAt));
            if (age < RenewalWaitBudget - TimeSpan.FromMilliseconds(20))
            {
                Violation("settle begun while a renewal of the handle still ran", $"handle {handle}: {kind} with {running} renewal(s) running, begun {age.TotalMilliseconds:0} ms before");
            }
            else
            {
                Interlocked.Increment(ref _settlesAfterSlowRenewal);
            }
        }

        if (cancellationToken.IsCancellationRequested)
        {
            Violation("settle handed an already-cancelled token", $"handle {handle}: {kind}");
            if (HonourTokens)
            {
                SetFate(record, SettleFate.Refused);
                return ValueTask.FromCanceled(cancellationToken);
            }
        }

        var behaviour = _settleOf(handle);
        if (behaviour is SourceSettle.HangHonouringToken or SourceSettle.HangIgnoringToken && Interlocked.Increment(ref _settleHangs) > SettleHangBudget)
        {
            behaviour = SourceSettle.Accept;
        }

        switch (behaviour)
        {
            case SourceSettle.AcceptAsync:
                return AcceptLaterAsync(record, Stopwatch.GetTimestamp(), cancellationToken);
            case SourceSettle.AcceptAfterRoundTrip:
                return AcceptAfterRoundTripAsync(record, cancellationToken);
            case SourceSettle.Throw:
                SetFate(record, SettleFate.Threw);
                throw new IOException($"injected {kind} fault for handle {handle}");
            case SourceSettle.ThrowAsync:
                SetFate(record, SettleFate.Threw);
                return ValueTask.FromException(new IOException($"injected {kind} fault for handle {handle} (async)"));
            case SourceSettle.HangIgnoringToken:
                SetFate(record, SettleFate.Hanging);
                return new ValueTask(_release.Task);
            case SourceSettle.HangHonouringToken:
                SetFate(record, SettleFate.Hanging);
                return HangAsync(record, cancellationToken);
            default:
                SetFate(record, SettleFate.Accepted);
                return ValueTask.CompletedTask;
        }
    }

    private async ValueTask AcceptLaterAsync(HandleRecord record, long calledAt, CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (HonourTokens && cancellationToken.IsCancellationRequested)
        {
            SetFate(record, SettleFate.CancelledInFlight);
            throw new OperationCanceledException(cancellationToken);
        }

        if (Stopwatch.GetElapsedTime(calledAt) > LateAfter)
        {
            Volatile.Write(ref record.Late, 1);
        }

        SetFate(record, SettleFate.Accepted);
    }

    private async ValueTask AcceptAfterRoundTripAsync(HandleRecord record, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(RoundTrip, HonourTokens ? cancellationToken : CancellationToken.None).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            SetFate(record, SettleFate.CancelledInFlight);
            throw;
        }

        SetFate(record, SettleFate.Accepted);
    }

    private async ValueTask HangAsync(HandleRecord record, CancellationToken cancellationToken)
    {
        try
        {
            await _release.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            SetFate(record, SettleFate.CancelledWhileHanging);
            throw;
        }
    }

    private static void SetFate(HandleRecord record, SettleFate fate) => Volatile.Write(ref record.Fate, (int)fate);

    private HandleRecord Find(long handle, string call)
    {
        if (handle < 0 || handle >= Pulled)
        {
            Violation("call for a handle never handed out", $"{call} of handle {handle}");
            throw new ArgumentOutOfRangeException(nameof(handle), handle, "unknown handle");
        }

        return _records[handle];
    }

    private void Violation(string kind, string example)
    {
        var entry = _violations.AddOrUpdate(kind, _ => (1, new ConcurrentQueue<string>()), (_, v) => (v.Count + 1, v.Examples));
        if (entry.Examples.Count < ExamplesPerKind)
        {
            entry.Examples.Enqueue(example);
        }
    }

    private sealed class HandleRecord
    {
        public int SettleCalls;
        public int RenewalsRunning;
        public int Renewals;
        public int Kind;
        public int Fate;
        public int Late;
        public long RenewalStartedAt;
    }
}
