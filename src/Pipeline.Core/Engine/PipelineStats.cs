using System.Runtime.InteropServices;

namespace Pipeline.Engine;

/// <summary>
/// Live counters of one pipeline. Settles are counted by what became of them: <see cref="Acked"/>,
/// <see cref="Nacked"/> and <see cref="Terminated"/> count settles the source accepted, and
/// <see cref="SettleErrors"/> settle calls that threw or ran out of time. The invariant they show:
/// <c>Pulled = Acked + Nacked + Terminated + SettleErrors + InFlight</c>, and <c>InFlight</c> is 0
/// once a run has ended.
/// </summary>
public sealed class PipelineStats
{
    private readonly Counter[] _counters = new Counter[(int)StatCounter.Count];
    private readonly Func<PipelineBlocks> _blocks;
    private readonly TimeProvider _time;
    private readonly long _millisecond;
    private long _firstPulledAt;
    private long _lastSettledAt;

    internal PipelineStats(Func<PipelineBlocks> blocks, TimeProvider time)
    {
        _blocks = blocks;
        _time = time;
        _millisecond = Math.Max(1, time.TimestampFrequency / 1000);
    }

    /// <summary>
    /// From the first pull to the last settle or tool end: the time the pipeline had work, without
    /// its start-up or the idle tail of a worker waiting for more. Zero before anything ended.
    /// </summary>
    public TimeSpan Busy
    {
        get
        {
            var first = Volatile.Read(ref _firstPulledAt);
            var last = Volatile.Read(ref _lastSettledAt);
            return first == 0 || last <= first ? TimeSpan.Zero : _time.GetElapsedTime(first, last);
        }
    }

    /// <summary>Items returned by <c>NextAsync</c>.</summary>
    public long Pulled => Read(StatCounter.Pulled);

    /// <summary>Acks the source accepted.</summary>
    public long Acked => Read(StatCounter.Acked);

    /// <summary>Nacks the source accepted, delayed or not.</summary>
    public long Nacked => Read(StatCounter.Nacked);

    /// <summary>Terminates the source accepted (poison items given up on).</summary>
    public long Terminated => Read(StatCounter.Terminated);

    /// <summary>Settle calls that threw or outran <see cref="PipelineOptions.SettleTimeout"/>; each was made once, and the source's redelivery covers it.</summary>
    public long SettleErrors => Read(StatCounter.SettleErrors);

    /// <summary>Second settles of a handle that was already settled: refused by the guard, never passed to the source.</summary>
    public long DuplicateSettles => Read(StatCounter.DuplicateSettles);

    /// <summary>Deliveries still open at the hard shutdown deadline, nacked by the pipeline (each is logged by command id).</summary>
    public long DeadlineSettles => Read(StatCounter.DeadlineSettles);

    /// <summary>Commands nacked by a stop before their tool started, so another worker gets them at once (counted in <see cref="Nacked"/> too).</summary>
    public long HandedBack => Read(StatCounter.HandedBack);

    /// <summary>Calls to an <see cref="Claiming.IClaimRecorder"/> that failed (release, or the outcome of a claim); each is logged.</summary>
    public long ClaimRecordErrors => Read(StatCounter.ClaimRecordErrors);

    /// <summary>Handles pulled and not yet settled.</summary>
    public long InFlight => Pulled - Acked - Nacked - Terminated - SettleErrors;

    /// <summary>Dispatches whose tool succeeded.</summary>
    public long Completed => Read(StatCounter.Completed);

    /// <summary>
    /// Commands given up on: their tool failed, timed out or was unknown, and they are not
    /// redelivered (terminated, acked, or acked before dispatch). A failed run that is nacked for
    /// redelivery is a <see cref="Retried"/>, not a failure.
    /// </summary>
    public long Failed => Read(StatCounter.Failed);

    /// <summary>Dispatches whose tool failed and whose command was nacked for redelivery (it may yet complete).</summary>
    public long Retried => Read(StatCounter.Retried);

    /// <summary>Items acked without dispatch: claimed elsewhere or a duplicate delivery.</summary>
    public long Skipped => Read(StatCounter.Skipped);

    /// <summary>Claims that failed transiently (nacked for redelivery), duplicates of a running command included.</summary>
    public long ClaimRetries => Read(StatCounter.ClaimRetries);

    /// <summary>Claims that failed terminally (malformed, refused).</summary>
    public long ClaimFailures => Read(StatCounter.ClaimFailures);

    /// <summary>Failing <c>NextAsync</c> calls (each followed by backoff).</summary>
    public long PullErrors => Read(StatCounter.PullErrors);

    /// <summary>Keep-alive renewals the source accepted.</summary>
    public long Renewals => Read(StatCounter.Renewals);

    /// <summary>Keep-alive renewals that failed.</summary>
    public long RenewalErrors => Read(StatCounter.RenewalErrors);

    /// <summary>Events the sink accepted.</summary>
    public long EventsEmitted => Read(StatCounter.EventsEmitted);

    /// <summary>Events dropped: the sink kept failing, or the shutdown deadline came first.</summary>
    public long EventsDropped => Read(StatCounter.EventsDropped);

    /// <summary>Unexpected failures inside a block (bugs); each is logged as critical and its item settled. Should stay 0.</summary>
    public long InternalErrors => Read(StatCounter.InternalErrors);

    /// <summary>Blocks that faulted (a delegate threw past its own handler). Any fault stops the run, which then throws.</summary>
    public long BlockFaults => Read(StatCounter.BlockFaults);

    /// <summary>Time from pull to settle of each item.</summary>
    public LatencyHistogram Latency { get; } = new();

    /// <summary>Items waiting at and being worked on by each block now.</summary>
    public PipelineBlocks Blocks => _blocks();

    /// <summary>An item was pulled at <paramref name="timestamp"/> (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    internal void MarkPulled(long timestamp)
    {
        Increment(StatCounter.Pulled);
        if (Volatile.Read(ref _firstPulledAt) == 0)
        {
            Interlocked.CompareExchange(ref _firstPulledAt, timestamp, 0);
        }
    }

    /// <summary>A settle or a tool run ended at <paramref name="timestamp"/>, however it ended.</summary>
    /// <remarks>
    /// Written at most once a millisecond: every core settles, and a write per settle would bounce
    /// the field's cache line between them (measured: a tenth of the in-memory throughput).
    /// </remarks>
    internal void MarkEnded(long timestamp)
    {
        if (timestamp - Volatile.Read(ref _lastSettledAt) > _millisecond)
        {
            Volatile.Write(ref _lastSettledAt, timestamp);
        }
    }

    internal void Increment(StatCounter counter) => Interlocked.Increment(ref _counters[(int)counter].Value);

    internal void Add(StatCounter counter, long value) => Interlocked.Add(ref _counters[(int)counter].Value, value);

    internal long Read(StatCounter counter) => Volatile.Read(ref _counters[(int)counter].Value);

    // One cache line per counter: the blocks update different counters from different cores.
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Counter
    {
        [FieldOffset(64)]
        public long Value;
    }
}

/// <summary>One block's load.</summary>
/// <param name="Queued">Items waiting at the block's input.</param>
/// <param name="Running">Items the block is working on now.</param>
public readonly record struct BlockLoad(int Queued, int Running);

/// <summary>The load of each of the five blocks.</summary>
/// <param name="Pull">Running: <c>NextAsync</c> calls in progress; Queued: free in-flight slots.</param>
/// <param name="Claim">The Claim block.</param>
/// <param name="AckDecision">The Ack-decision block.</param>
/// <param name="Dispatch">The Dispatch block (Running: tools running).</param>
/// <param name="Emit">The Emit block (items whose events wait for the sink).</param>
public readonly record struct PipelineBlocks(BlockLoad Pull, BlockLoad Claim, BlockLoad AckDecision, BlockLoad Dispatch, BlockLoad Emit);

internal enum StatCounter
{
    Pulled,
    Acked,
    Nacked,
    Terminated,
    SettleErrors,
    DuplicateSettles,
    DeadlineSettles,
    Completed,
    Failed,
    Retried,
    Skipped,
    ClaimRetries,
    ClaimFailures,
    PullErrors,
    Renewals,
    RenewalErrors,
    EventsEmitted,
    EventsDropped,
    InternalErrors,
    BlockFaults,
    HandedBack,
    ClaimRecordErrors,
    Count,
}
