using Pipeline.Engine;

namespace Pipeline.Bench.Legacy;

/// <summary>The bounds of one block.</summary>
public sealed record BlockOptions
{
    /// <summary>Concurrent workers in the block. Must be at least 1.</summary>
    public int Parallelism { get; init; } = 1;

    /// <summary>Items the block's input queue holds. Must be at least 1.</summary>
    public int Capacity { get; init; } = 256;

    internal void Validate(string block)
    {
        if (Parallelism < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Parallelism), Parallelism, $"{block}.Parallelism must be at least 1.");
        }

        if (Capacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Capacity), Capacity, $"{block}.Capacity must be at least 1.");
        }
    }
}

/// <summary>
/// Everything that tunes one pipeline: each block's parallelism and capacity, the ack policy,
/// timeouts and retries. Every property has a documented default that suits a 2-core worker.
/// </summary>
public sealed record PipelineOptions
{
    /// <summary>Concurrent <c>NextAsync</c> calls. Default 2.</summary>
    public int PullParallelism { get; init; } = 2;

    /// <summary>The Claim block. Default: 1 worker, 256 queued.</summary>
    public BlockOptions Claim { get; init; } = new();

    /// <summary>The Ack-decision block. Default: 1 worker, 256 queued.</summary>
    public BlockOptions AckDecision { get; init; } = new();

    /// <summary>The Dispatch block: how many tools run at once. Default: 16 workers, 256 queued.</summary>
    public BlockOptions Dispatch { get; init; } = new() { Parallelism = 16 };

    /// <summary>The Emit block. Default: 1 worker, 4096 queued events.</summary>
    public BlockOptions Emit { get; init; } = new() { Capacity = 4096 };

    /// <summary>Most events handed to the sink in one batch. Default 256.</summary>
    public int EmitBatchSize { get; init; } = 256;

    /// <summary>When a claimed command's handle is settled. Default <see cref="AckMode.AckBeforeDispatch"/>.</summary>
    public AckMode AckMode { get; init; } = AckMode.AckBeforeDispatch;

    /// <summary>
    /// With <see cref="AckMode.AckAfterDispatch"/>: attempts (counting the first) before a failing
    /// command is given up on (terminated where the source can, else acked) with a
    /// <c>command.failed</c> event. Default 5.
    /// </summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Delay before a nacked item comes back, by its attempts (sources with delayed nack). Default 1 s doubling to 60 s.</summary>
    public Backoff NackBackoff { get; init; } = new();

    /// <summary>What to do with a <c>Failed</c> claim. Default <see cref="FailedClaimAction.Terminate"/>.</summary>
    public FailedClaimAction FailedClaimAction { get; init; } = FailedClaimAction.Terminate;

    /// <summary>Longest one tool attempt may take; each in-process retry gets its own. Default 30 s.</summary>
    public TimeSpan ToolTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>In-process retries of a transient tool failure. Default 2.</summary>
    public int ToolRetries { get; init; } = 2;

    /// <summary>The first delay between tool retries (exponential, jittered). Default 200 ms.</summary>
    public TimeSpan ToolRetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>After a stop is requested, how long in-flight work may finish before it is cancelled. Default 30 s.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Backoff after a failing <c>NextAsync</c>: 250 ms doubling to 10 s, forever, until stopped.</summary>
    public Backoff PullErrorBackoff { get; init; } = new() { Base = TimeSpan.FromMilliseconds(250), Max = TimeSpan.FromSeconds(10) };

    /// <summary>Retries of an event batch the sink refused, before it is dropped and counted. Default 3 (the NoETL worker's).</summary>
    public int EmitRetries { get; init; } = 3;

    /// <summary>Backoff between event-batch retries: 500 ms doubling to 10 s (the NoETL worker's).</summary>
    public Backoff EmitRetryBackoff { get; init; } = new() { Base = TimeSpan.FromMilliseconds(500), Max = TimeSpan.FromSeconds(10) };

    /// <summary>How many recent command ids are remembered to skip duplicate deliveries. 0 turns it off. Default 10,000.</summary>
    public int RecentCommandIds { get; init; } = 10_000;

    /// <summary>The identity stamped on events. Default: host name and process id.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>
    /// The most items the pipeline can hold at once: every concurrent pull, every queue slot
    /// and every worker of Claim, Ack-decision and Dispatch. Pulls stop when it is reached.
    /// </summary>
    public int MaxItemsHeld =>
        PullParallelism
        + Claim.Capacity + Claim.Parallelism
        + AckDecision.Capacity + AckDecision.Parallelism
        + Dispatch.Capacity + Dispatch.Parallelism;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (PullParallelism < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(PullParallelism), PullParallelism, "PullParallelism must be at least 1.");
        }

        Claim.Validate(nameof(Claim));
        AckDecision.Validate(nameof(AckDecision));
        Dispatch.Validate(nameof(Dispatch));
        Emit.Validate(nameof(Emit));
        if (EmitBatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(EmitBatchSize), EmitBatchSize, "EmitBatchSize must be at least 1.");
        }

        if (MaxAttempts < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "MaxAttempts must be at least 1.");
        }

        if (ToolTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ToolTimeout), ToolTimeout, "ToolTimeout must be positive.");
        }

        if (ToolRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ToolRetries), ToolRetries, "ToolRetries must not be negative.");
        }

        if (EmitRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(EmitRetries), EmitRetries, "EmitRetries must not be negative.");
        }

        if (ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ShutdownTimeout), ShutdownTimeout, "ShutdownTimeout must not be negative.");
        }

        if (RecentCommandIds < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(RecentCommandIds), RecentCommandIds, "RecentCommandIds must not be negative.");
        }

        if (string.IsNullOrWhiteSpace(WorkerId))
        {
            throw new ArgumentException("WorkerId must not be empty.", nameof(WorkerId));
        }
    }
}
