using Pipeline.Engine;

namespace Pipeline.Storage;

/// <summary>Settings of <see cref="StoreCommandSource"/>; every default is what a worker on one machine wants.</summary>
public sealed record StoreSourceOptions
{
    /// <summary>This worker's identity on its claims (<c>pipeline status</c> shows it). Default: host name and process id.</summary>
    public string Owner { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>A claim's lease; it is renewed from pull to settle every <see cref="KeepAliveInterval"/>. Default 30 s.</summary>
    public TimeSpan LeaseTimeToLive { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a held command's lease is renewed. Default: a third of <see cref="LeaseTimeToLive"/>; at most that.</summary>
    public TimeSpan? KeepAliveInterval { get; init; }

    /// <summary>Sessions claimed per round trip (one command each with <see cref="BatchesPerSession"/> 1). Default 128.</summary>
    public int ClaimSessions { get; init; } = 128;

    /// <summary>
    /// Consecutive batches of one session taken by one claim. Default 1: a session's commands are
    /// claimed one after another, in order (with ack after dispatch each starts only once the one
    /// before it finished; with ack before dispatch the next is claimed as the previous starts).
    /// More lets a session's commands run side by side (still claimed in order).
    /// </summary>
    public int BatchesPerSession { get; init; } = 1;

    /// <summary>Settles written in one transaction at most. Default 256.</summary>
    public int SettleBatch { get; init; } = 256;

    /// <summary>The longest wait between two claims while nothing is ready (the wait doubles from 1 ms up to it). Default 200 ms.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>A plain nack's first delay before the command is ready again; it doubles with each attempt. Default 1 s.</summary>
    public TimeSpan NackBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest delay a plain nack gives. Default 5 min.</summary>
    public TimeSpan NackBackoffMax { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long to wait for the store while it cannot be reached (each call retried with backoff) before a settle gives up. Default 30 s.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>End the source once nothing was ready for this long; <c>null</c> (the default) runs until stopped.</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>The interval the keep-alive uses.</summary>
    public TimeSpan EffectiveKeepAliveInterval => KeepAliveInterval ?? LeaseTimeToLive / 3;

    /// <summary>Every setting that cannot work, by property name; empty when none.</summary>
    public IReadOnlyList<ArgumentException> FindErrors()
    {
        var errors = new List<ArgumentException>();
        if (string.IsNullOrWhiteSpace(Owner))
        {
            errors.Add(new ArgumentException("Owner must name this worker.", nameof(Owner)));
        }

        // Every duration is bounded above too, as --lease-ttl-ms and --exit-when-idle are: each is armed
        // as a timer (which refuses more than about 49.7 days) while the worker runs, not when it starts.
        if (LeaseTimeToLive < TimeSpan.FromSeconds(1) || LeaseTimeToLive > SettingLimits.Longest)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(LeaseTimeToLive), LeaseTimeToLive, "LeaseTimeToLive must be from 1 s to 1 day."));
        }

        if (KeepAliveInterval is { } keepAlive && (keepAlive <= TimeSpan.Zero || keepAlive > LeaseTimeToLive / 3))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(KeepAliveInterval), keepAlive, "KeepAliveInterval must be positive and at most a third of LeaseTimeToLive (a lease renewed less often lapses under a slow but healthy worker)."));
        }

        Positive(errors, ClaimSessions, nameof(ClaimSessions), 10_000);
        Positive(errors, BatchesPerSession, nameof(BatchesPerSession), 10_000);
        Positive(errors, SettleBatch, nameof(SettleBatch), 10_000);
        if (!SettingLimits.IsDuration(PollInterval, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, $"PollInterval {SettingLimits.DurationRange(positive: true)}."));
        }

        if (NackBackoff < TimeSpan.Zero || NackBackoffMax < NackBackoff || NackBackoffMax > SettingLimits.Longest)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(NackBackoff), NackBackoff, "NackBackoff must not be negative, and NackBackoffMax at least NackBackoff and at most 1 day."));
        }

        if (!SettingLimits.IsDuration(SettleTimeout, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(SettleTimeout), SettleTimeout, $"SettleTimeout {SettingLimits.DurationRange(positive: true)}."));
        }

        if (IdleTimeout is { } idle && !SettingLimits.IsDuration(idle, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(IdleTimeout), idle, $"IdleTimeout {SettingLimits.DurationRange(positive: true)} (or null: never)."));
        }

        return errors;
    }

    /// <summary>Throws the first of <see cref="FindErrors"/>.</summary>
    public void Validate()
    {
        var errors = FindErrors();
        if (errors.Count > 0)
        {
            throw errors[0];
        }
    }

    private static void Positive(List<ArgumentException> errors, int value, string name, int max)
    {
        if (value < 1 || value > max)
        {
            errors.Add(new ArgumentOutOfRangeException(name, value, $"{name} must be between 1 and {max}."));
        }
    }
}
