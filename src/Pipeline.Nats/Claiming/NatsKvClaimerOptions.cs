using Pipeline.Engine;

namespace Pipeline.Nats.Claiming;

/// <summary>Where the KV claimer keeps its claims and heartbeats. Immutable; <see cref="Validate"/> names the first bad setting.</summary>
public sealed record NatsKvClaimerOptions
{
    /// <summary>The KV bucket of claim records, one per command id. Default <c>pipeline_claims</c>.</summary>
    public string Bucket { get; init; } = "pipeline_claims";

    /// <summary>
    /// How long a claim record is kept: the window in which a second publish, or a redelivery of a
    /// finished command, is recognised. The bucket's MaxAge, since per-key TTL needs nats-server
    /// 2.11 (Debian ships 2.9). Default 24 h.
    /// </summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Create the buckets (claims and heartbeats) when missing. Default true.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Who claims: stored in the claim record and the heartbeat for diagnostics. Default host name and process id.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>How often a claimer refreshes its heartbeat key, the proof that its claims are alive. From 100 ms to 1 day. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long after its last heartbeat a worker counts as gone, so another may take over what it
    /// claimed: the MaxAge of the heartbeat bucket (<see cref="WorkersBucket"/>), which every worker
    /// of a pool should share. At least twice <see cref="HeartbeatInterval"/>, at most 1 day. Default 15 s: within
    /// the consumer's default 30 s ack wait, so a dead worker's messages, redelivered after the ack
    /// wait, find it already gone.
    /// </summary>
    public TimeSpan WorkerTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Longest a release or an outcome (completed, failed) keeps retrying its write, e.g. across a
    /// server restart. Past it the record stays "claimed", and a redelivery after this worker is
    /// gone runs the command again. More than 0, at most 1 day. Default 10 s.
    /// </summary>
    public TimeSpan RecordTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The KV bucket of heartbeats: <see cref="Bucket"/> + <c>_workers</c>.</summary>
    public string WorkersBucket => $"{Bucket}_workers";

    /// <summary>Throws the first of <see cref="FindErrors"/>, naming the setting that cannot work.</summary>
    public void Validate()
    {
        if (FindErrors() is [var first, ..])
        {
            throw first;
        }
    }

    /// <summary>Every setting that cannot work, not only the first, each an exception naming it (its message starts with the property's name).</summary>
    public IReadOnlyList<ArgumentException> FindErrors()
    {
        var errors = new List<ArgumentException>();
        if (string.IsNullOrWhiteSpace(Bucket) || !Bucket.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            errors.Add(new ArgumentException($"Bucket must be a non-empty name of letters, digits, '-' and '_' (it is \"{Bucket}\").", nameof(Bucket)));
        }

        if (MaxAge < TimeSpan.FromSeconds(1))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(MaxAge), MaxAge, "MaxAge must be at least 1 s."));
        }

        if (string.IsNullOrWhiteSpace(WorkerId))
        {
            errors.Add(new ArgumentException("WorkerId must not be empty.", nameof(WorkerId)));
        }

        // The intervals and timeouts are armed as timers, which refuse more than about 49.7 days.
        if (HeartbeatInterval < TimeSpan.FromMilliseconds(100) || HeartbeatInterval > SettingLimits.Longest)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(HeartbeatInterval), HeartbeatInterval, "HeartbeatInterval must be from 100 ms to 1 day."));
        }

        // One late or lost heartbeat must not make a live worker look gone.
        if (WorkerTimeout < 2 * HeartbeatInterval || WorkerTimeout < TimeSpan.FromSeconds(1) || WorkerTimeout > SettingLimits.Longest)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(WorkerTimeout), WorkerTimeout, $"WorkerTimeout must be at least 1 s and at least twice HeartbeatInterval ({HeartbeatInterval}), and at most 1 day."));
        }

        if (!SettingLimits.IsDuration(RecordTimeout, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(RecordTimeout), RecordTimeout, $"RecordTimeout {SettingLimits.DurationRange(positive: true)}."));
        }

        return errors;
    }
}
