namespace Pipeline.Storage;

/// <summary>Who claims, and for how long before the lease lapses unless renewed.</summary>
public sealed record LeaseRequest
{
    /// <summary>The claiming worker's identity, recorded on the claim.</summary>
    public required string Owner { get; init; }

    /// <summary>
    /// The lease's time to live. Default 30 s; renew at a third of it or more often (a lease never
    /// renewed made slow but healthy owners lose their work in lash).
    /// </summary>
    public TimeSpan TimeToLive { get; init; } = TimeSpan.FromSeconds(30);
}
