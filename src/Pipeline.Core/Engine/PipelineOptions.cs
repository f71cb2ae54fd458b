using Pipeline.Modules;

namespace Pipeline.Engine;

/// <summary>When the Ack-decision block settles the handle of a claimed command (in configuration: <c>before-dispatch</c> or <c>after-dispatch</c>, as <c>--ack-mode</c> spells them, or the names).</summary>
public enum AckMode
{
    /// <summary>
    /// Ack before dispatch: the claim is durable ownership (a control plane or a store row), so
    /// the source need not redeliver. The seed's default.
    /// </summary>
    [SettingName("before-dispatch")]
    AckBeforeDispatch,

    /// <summary>
    /// Keep the handle through dispatch: ack on success, nack with backoff on failure, give up
    /// after <see cref="PipelineOptions.MaxAttempts"/>. For sources that are the only durability
    /// (at-least-once execution).
    /// </summary>
    [SettingName("after-dispatch")]
    AckAfterDispatch,
}

/// <summary>What the Ack-decision block does with a <c>Failed</c> claim.</summary>
public enum FailedClaimAction
{
    /// <summary>Terminate the item where the source can (it would fail the same way again); nack where it cannot.</summary>
    [SettingName("terminate")]
    Terminate,

    /// <summary>Nack, leaving the source's redelivery policy to bound it (the seed's literal rule).</summary>
    [SettingName("nack")]
    Nack,
}

/// <summary>What the Emit block does while the event sink keeps failing.</summary>
public enum SinkFailureAction
{
    /// <summary>
    /// Retry the batch with backoff until the sink takes it or the shutdown deadline: deliveries
    /// wait in Emit holding their in-flight slots, so pulling slows and stops. Nothing is lost
    /// while the process lives. Settles never wait for events.
    /// </summary>
    [SettingName("backpressure")]
    Backpressure,

    /// <summary>
    /// Retry a batch <see cref="PipelineOptions.EmitRetries"/> times, then drop and count it; while
    /// the sink keeps failing a circuit breaker drops batches at once, so work goes on at full speed.
    /// </summary>
    [SettingName("drop")]
    Drop,
}

/// <summary>One block's degree of parallelism.</summary>
public sealed record BlockOptions
{
    /// <summary>How many items the block works on at once. Must be from 1 to <see cref="MaxParallelism"/>.</summary>
    [SettingRange(1, MaxParallelism)]
    public int Parallelism { get; init; } = 1;

    /// <summary>The largest parallelism a block accepts.</summary>
    public const int MaxParallelism = 4096;

    internal void AddErrors(List<SettingError> errors, string block)
    {
        if (Parallelism is < 1 or > MaxParallelism)
        {
            errors.Add(new($"{block}:{nameof(Parallelism)}", FormattableString.Invariant($"must be from 1 to {MaxParallelism} (it is {Parallelism}).")));
        }
    }
}

/// <summary>Exponential backoff: <c>min(Max, Base × 2^attempts)</c>.</summary>
public sealed record Backoff
{
    /// <summary>The first delay. Default 1 s.</summary>
    public TimeSpan Base { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The largest delay. Default 60 s.</summary>
    public TimeSpan Max { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The longest delay a backoff may have (<see cref="SettingLimits.Longest"/>: one day).</summary>
    public static readonly TimeSpan Longest = SettingLimits.Longest;

    internal void AddErrors(List<SettingError> errors, string name)
    {
        if (Base < TimeSpan.Zero || Max < Base || Max > Longest)
        {
            errors.Add(new(name, FormattableString.Invariant($"must have 0 <= Base <= Max <= 1 day (it has Base {Base}, Max {Max}).")));
        }
    }

    /// <summary>The delay before attempt <paramref name="attempts"/> + 1.</summary>
    public TimeSpan DelayFor(int attempts)
    {
        var factor = Math.Pow(2, Math.Clamp(attempts, 0, 30));
        var ticks = Math.Min(Max.Ticks, Base.Ticks * factor);
        return TimeSpan.FromTicks((long)ticks);
    }
}

/// <summary>
/// Everything that tunes one pipeline: each block's parallelism, the one in-flight bound, the
/// ack policy, timeouts and retries. Every property has a documented default that suits a
/// 2-core worker; <see cref="FindErrors"/> names every one out of range.
/// </summary>
public sealed record PipelineOptions
{
    /// <summary>The largest <see cref="MaxInFlight"/> accepted.</summary>
    public const int MaxInFlightLimit = 1 << 20;

    /// <summary>Concurrent <c>NextAsync</c> calls (the Pull block's parallelism). Default 2.</summary>
    [SettingRange(1, BlockOptions.MaxParallelism)]
    public int PullParallelism { get; init; } = 2;

    /// <summary>The Claim block. Default: 1.</summary>
    public BlockOptions Claim { get; init; } = new();

    /// <summary>The Ack-decision block. Default: 1.</summary>
    public BlockOptions AckDecision { get; init; } = new();

    /// <summary>The Dispatch block: how many tools run at once. Default 16.</summary>
    public BlockOptions Dispatch { get; init; } = new() { Parallelism = 16 };

    /// <summary>The Emit block: concurrent sink writes. Default 1 (one item's events stay in order).</summary>
    public BlockOptions Emit { get; init; } = new();

    /// <summary>
    /// The one bound on what the pipeline holds: deliveries pulled and not yet through Emit, plus
    /// <c>NextAsync</c> calls in progress. A slot is taken before <c>NextAsync</c> and given back
    /// when the item's events have been handed to the sink, so memory is bounded by this number,
    /// never by the input. Default 1024.
    /// </summary>
    [SettingRange(1, MaxInFlightLimit)]
    public int MaxInFlight { get; init; } = 1024;

    /// <summary>Most events handed to the sink in one batch. Default 256.</summary>
    [SettingRange(1, 65_536)]
    public int EmitBatchSize { get; init; } = 256;

    /// <summary>What happens while the sink keeps failing. Default <see cref="SinkFailureAction.Backpressure"/>.</summary>
    public SinkFailureAction SinkFailure { get; init; } = SinkFailureAction.Backpressure;

    /// <summary>When a claimed command's handle is settled. Default <see cref="AckMode.AckBeforeDispatch"/>.</summary>
    public AckMode AckMode { get; init; } = AckMode.AckBeforeDispatch;

    /// <summary>
    /// With <see cref="AckMode.AckAfterDispatch"/>: attempts (counting the first) before a failing
    /// command is given up on (terminated where the source can, else acked) with a
    /// <c>command.failed</c> event. From 1 to 1000. Default 5.
    /// </summary>
    [SettingRange(1, SettingLimits.MaxAttempts)]
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Delay before a nacked item comes back, by its attempts (sources with delayed nack). Default 1 s doubling to 60 s.</summary>
    public Backoff NackBackoff { get; init; } = new();

    /// <summary>What to do with a <c>Failed</c> claim. Default <see cref="FailedClaimAction.Terminate"/>.</summary>
    public FailedClaimAction FailedClaimAction { get; init; } = FailedClaimAction.Terminate;

    /// <summary>Longest one tool attempt may take; each in-process retry gets its own. More than 0, at most 1 day. Default 30 s.</summary>
    public TimeSpan ToolTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>In-process retries of a transient tool failure. From 0 to 10. Default 2.</summary>
    [SettingRange(0, SettingLimits.MaxRetries)]
    public int ToolRetries { get; init; } = 2;

    /// <summary>The first delay between tool retries (exponential, jittered, each at most 1 day). From 0 to 1 day. Default 200 ms.</summary>
    public TimeSpan ToolRetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// After a stop is requested, how long in-flight work may finish. At this hard deadline the
    /// tools, claimer and sink are cancelled and every delivery still open is nacked. From 0 to 1 day. Default 30 s.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Each settle's own time budget: a settle call that has not returned by then counts as a
    /// settle error, and after the hard deadline <c>RunAsync</c> waits at most this long for the
    /// last settles, so it returns within <see cref="ShutdownTimeout"/> + this even when a callee
    /// ignores its token. Settles are never given an already-cancelled token. More than 0, at most 1 day. Default 5 s.
    /// </summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Backoff after a failing <c>NextAsync</c>: 250 ms doubling to 10 s, forever, until stopped.</summary>
    public Backoff PullErrorBackoff { get; init; } = new() { Base = TimeSpan.FromMilliseconds(250), Max = TimeSpan.FromSeconds(10) };

    /// <summary>With <see cref="SinkFailureAction.Drop"/>: retries of an event batch before it is dropped and counted. From 0 to 10. Default 3 (the NoETL worker's).</summary>
    [SettingRange(0, SettingLimits.MaxRetries)]
    public int EmitRetries { get; init; } = 3;

    /// <summary>Backoff between event-batch retries: 500 ms doubling to 10 s (the NoETL worker's).</summary>
    public Backoff EmitRetryBackoff { get; init; } = new() { Base = TimeSpan.FromMilliseconds(500), Max = TimeSpan.FromSeconds(10) };

    /// <summary>
    /// How many finished command ids are remembered to skip duplicate deliveries (ids of running
    /// commands are always held, on top of this). 0 turns it off. Default 10,000.
    /// </summary>
    public int RecentCommandIds { get; init; } = 10_000;

    /// <summary>The identity stamped on events. Default: host name and process id.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>
    /// Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range
    /// (<see cref="FindErrors"/> lists them all).
    /// </summary>
    public void Validate()
    {
        if (FindErrors() is [var first, ..])
        {
            throw new ArgumentOutOfRangeException(first.Key.Replace(':', '.'), first.InCode());
        }
    }

    /// <summary>
    /// Every option out of range, not only the first, each named by its key under this record
    /// (<c>Dispatch:Parallelism</c>) so a host can name it as configuration does
    /// (<c>Pipeline:Engine:Dispatch:Parallelism</c>). Empty when the options can run.
    /// </summary>
    public IReadOnlyList<SettingError> FindErrors()
    {
        var errors = new List<SettingError>();
        if (PullParallelism is < 1 or > BlockOptions.MaxParallelism)
        {
            errors.Add(new(nameof(PullParallelism), FormattableString.Invariant($"must be from 1 to {BlockOptions.MaxParallelism} (it is {PullParallelism}).")));
        }

        Claim.AddErrors(errors, nameof(Claim));
        AckDecision.AddErrors(errors, nameof(AckDecision));
        Dispatch.AddErrors(errors, nameof(Dispatch));
        Emit.AddErrors(errors, nameof(Emit));
        if (MaxInFlight < PullParallelism || MaxInFlight > MaxInFlightLimit)
        {
            errors.Add(new(nameof(MaxInFlight), FormattableString.Invariant($"must be from PullParallelism ({PullParallelism}) to {MaxInFlightLimit} (it is {MaxInFlight}).")));
        }

        if (EmitBatchSize is < 1 or > 65_536)
        {
            errors.Add(new(nameof(EmitBatchSize), FormattableString.Invariant($"must be from 1 to 65536 (it is {EmitBatchSize}).")));
        }

        if (!Enum.IsDefined(SinkFailure))
        {
            errors.Add(new(nameof(SinkFailure), FormattableString.Invariant($"must be {nameof(SinkFailureAction.Backpressure)} or {nameof(SinkFailureAction.Drop)} (it is {(int)SinkFailure}).")));
        }

        if (!Enum.IsDefined(AckMode))
        {
            errors.Add(new(nameof(AckMode), FormattableString.Invariant($"must be {nameof(Engine.AckMode.AckBeforeDispatch)} or {nameof(Engine.AckMode.AckAfterDispatch)} (it is {(int)AckMode}).")));
        }

        if (!Enum.IsDefined(FailedClaimAction))
        {
            errors.Add(new(nameof(FailedClaimAction), FormattableString.Invariant($"must be {nameof(Engine.FailedClaimAction.Terminate)} or {nameof(Engine.FailedClaimAction.Nack)} (it is {(int)FailedClaimAction}).")));
        }

        NackBackoff.AddErrors(errors, nameof(NackBackoff));
        PullErrorBackoff.AddErrors(errors, nameof(PullErrorBackoff));
        EmitRetryBackoff.AddErrors(errors, nameof(EmitRetryBackoff));
        // Durations are bounded above as well: each is armed as a timer, which refuses more than
        // about 49.7 days, and would throw then (at a stop, for the shutdown timeout), not here.
        AddDurationError(errors, nameof(ToolRetryDelay), ToolRetryDelay, positive: false);
        AddDurationError(errors, nameof(ToolTimeout), ToolTimeout, positive: true);
        AddDurationError(errors, nameof(ShutdownTimeout), ShutdownTimeout, positive: false);
        AddDurationError(errors, nameof(SettleTimeout), SettleTimeout, positive: true);
        AddCountError(errors, nameof(MaxAttempts), MaxAttempts, 1, SettingLimits.MaxAttempts);
        AddCountError(errors, nameof(ToolRetries), ToolRetries, 0, SettingLimits.MaxRetries);
        AddCountError(errors, nameof(EmitRetries), EmitRetries, 0, SettingLimits.MaxRetries);

        if (RecentCommandIds < 0)
        {
            errors.Add(new(nameof(RecentCommandIds), FormattableString.Invariant($"must not be negative (it is {RecentCommandIds}).")));
        }

        if (string.IsNullOrWhiteSpace(WorkerId))
        {
            errors.Add(new(nameof(WorkerId), "must not be empty."));
        }

        return errors;
    }

    private static void AddDurationError(List<SettingError> errors, string key, TimeSpan value, bool positive)
    {
        if (!SettingLimits.IsDuration(value, positive))
        {
            errors.Add(new(key, FormattableString.Invariant($"{SettingLimits.DurationRange(positive)} (it is {value}).")));
        }
    }

    private static void AddCountError(List<SettingError> errors, string key, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            errors.Add(new(key, FormattableString.Invariant($"must be from {min} to {max} (it is {value}).")));
        }
    }
}
