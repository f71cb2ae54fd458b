using System.Runtime.InteropServices;
using Pipeline.Engine;

namespace Pipeline.Bench.Legacy;

/// <summary>
/// Live counters of one pipeline. The invariant they show: <c>Pulled = Acked + Nacked +
/// Terminated + InFlight</c>, and <c>InFlight</c> is 0 once a run has ended.
/// </summary>
public sealed class PipelineStats
{
    private readonly Counter[] _counters = new Counter[(int)StatCounter.Count];
    private readonly Func<QueueDepths> _depths;

    internal PipelineStats(Func<QueueDepths> depths)
    {
        _depths = depths;
    }

    /// <summary>Items returned by <c>NextAsync</c>.</summary>
    public long Pulled => Read(StatCounter.Pulled);

    /// <summary>Ack calls made (each handle is settled once).</summary>
    public long Acked => Read(StatCounter.Acked);

    /// <summary>Nack calls made, delayed or not.</summary>
    public long Nacked => Read(StatCounter.Nacked);

    /// <summary>Terminate calls made (poison items given up on).</summary>
    public long Terminated => Read(StatCounter.Terminated);

    /// <summary>Settle calls that threw (they still count once above; the source's redelivery covers them).</summary>
    public long SettleErrors => Read(StatCounter.SettleErrors);

    /// <summary>Handles pulled and not yet settled.</summary>
    public long InFlight => Pulled - Acked - Nacked - Terminated;

    /// <summary>Dispatches whose tool succeeded.</summary>
    public long Completed => Read(StatCounter.Completed);

    /// <summary>Dispatches whose tool failed, timed out or was unknown.</summary>
    public long Failed => Read(StatCounter.Failed);

    /// <summary>Items acked without dispatch: claimed elsewhere or a duplicate delivery.</summary>
    public long Skipped => Read(StatCounter.Skipped);

    /// <summary>Claims that failed transiently (nacked for redelivery).</summary>
    public long ClaimRetries => Read(StatCounter.ClaimRetries);

    /// <summary>Claims that failed terminally (malformed, refused).</summary>
    public long ClaimFailures => Read(StatCounter.ClaimFailures);

    /// <summary>Failing <c>NextAsync</c> calls (each followed by backoff).</summary>
    public long PullErrors => Read(StatCounter.PullErrors);

    /// <summary>Events handed to the sink.</summary>
    public long EventsEmitted => Read(StatCounter.EventsEmitted);

    /// <summary>Events dropped after the sink kept failing.</summary>
    public long EventsDropped => Read(StatCounter.EventsDropped);

    /// <summary>Unexpected failures inside a block (bugs); each is logged as critical. Should stay 0.</summary>
    public long InternalErrors => Read(StatCounter.InternalErrors);

    /// <summary>Time from pull to the end of each item's handling.</summary>
    public LatencyHistogram Latency { get; } = new();

    /// <summary>Items waiting in each block's input queue now.</summary>
    public QueueDepths QueueDepths => _depths();

    internal void Increment(StatCounter counter) => Interlocked.Increment(ref _counters[(int)counter].Value);

    internal void Add(StatCounter counter, long value) => Interlocked.Add(ref _counters[(int)counter].Value, value);

    private long Read(StatCounter counter) => Volatile.Read(ref _counters[(int)counter].Value);

    // One cache line per counter: the blocks update different counters from different cores.
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Counter
    {
        [FieldOffset(64)]
        public long Value;
    }
}

/// <summary>Items queued at each block's input.</summary>
/// <param name="Claim">Waiting for the Claim block.</param>
/// <param name="AckDecision">Waiting for the Ack-decision block.</param>
/// <param name="Dispatch">Waiting for the Dispatch block.</param>
/// <param name="Emit">Events waiting for the Emit block.</param>
public readonly record struct QueueDepths(int Claim, int AckDecision, int Dispatch, int Emit);

internal enum StatCounter
{
    Pulled,
    Acked,
    Nacked,
    Terminated,
    SettleErrors,
    Completed,
    Failed,
    Skipped,
    ClaimRetries,
    ClaimFailures,
    PullErrors,
    EventsEmitted,
    EventsDropped,
    InternalErrors,
    Count,
}
