namespace Pipeline.Nats.Claiming;

/// <summary>Where the KV claimer keeps its claims. Immutable; <see cref="Validate"/> names the first bad setting.</summary>
public sealed record NatsKvClaimerOptions
{
    /// <summary>The KV bucket. Default <c>pipeline_claims</c>.</summary>
    public string Bucket { get; init; } = "pipeline_claims";

    /// <summary>
    /// How long a claim is kept: the window in which a second publish of the same command is
    /// recognised. The bucket's MaxAge, since per-key TTL needs nats-server 2.11 (Debian ships 2.9).
    /// Default 24 h.
    /// </summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Create the bucket when missing. Default true.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Who claims: stored in the claim for diagnostics. Default host name and process id.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Bucket) || !Bucket.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            throw new ArgumentException($"Bucket must be a non-empty name of letters, digits, '-' and '_' (it is \"{Bucket}\").", nameof(Bucket));
        }

        if (MaxAge < TimeSpan.FromSeconds(1))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAge), MaxAge, "MaxAge must be at least 1 s.");
        }

        if (string.IsNullOrWhiteSpace(WorkerId))
        {
            throw new ArgumentException("WorkerId must not be empty.", nameof(WorkerId));
        }
    }
}
