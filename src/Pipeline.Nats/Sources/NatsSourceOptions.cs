using Pipeline.Engine;
using Pipeline.Modules;

namespace Pipeline.Nats.Sources;

/// <summary>
/// How the JetStream source finds (or creates) its stream and durable pull consumer, and how it
/// pulls. Immutable; every property has a documented default; <see cref="Validate"/> names the
/// first setting out of range and <see cref="ValidateFor"/> the settings that do not fit a pipeline.
/// </summary>
/// <remarks>
/// <para><b>How the bounds relate.</b> The pipeline holds at most
/// <see cref="PipelineOptions.MaxInFlight"/> deliveries; this source holds at most
/// <see cref="FetchBatch"/> more, fetched ahead and not yet handed to <c>NextAsync</c>. So one
/// worker has at most <c>MaxInFlight + FetchBatch</c> messages unacknowledged, and the consumer's
/// <see cref="MaxAckPending"/> (shared by every worker on the consumer) must be at least that, or
/// the server stops delivering before the pipeline can fill.</para>
/// <para><b>Why prefetch stays small.</b> A fetched message's ack-wait clock runs from the moment
/// the server sends it. The pipeline renews what it holds (keep-alive from pull to settle); this
/// source renews what it holds in its fetch buffer on the same interval, so a message waiting in a
/// full pipeline is not redelivered, but it is still kept from the other workers of the pool.</para>
/// </remarks>
public sealed record NatsSourceOptions
{
    /// <summary>The stream. Default <c>pipeline_commands</c>.</summary>
    public string Stream { get; init; } = "pipeline_commands";

    /// <summary>The stream's subjects, used when the stream is created. Default <c>pipeline.commands.&gt;</c>.</summary>
    public IReadOnlyList<string> Subjects { get; init; } = ["pipeline.commands.>"];

    /// <summary>The durable pull consumer every worker of a pool shares. Default <c>pipeline-workers</c>.</summary>
    public string Consumer { get; init; } = "pipeline-workers";

    /// <summary>The consumer's filter subject; null takes every subject of the stream. Default null.</summary>
    public string? FilterSubject { get; init; }

    /// <summary>
    /// Create the stream and the consumer when missing (and update the consumer's settings). When
    /// false, only bind to existing ones. Default true, so a first run needs only a server URL.
    /// </summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Most messages delivered and not yet acked, across every worker on the consumer. Default 4096.</summary>
    public int MaxAckPending { get; init; } = 4096;

    /// <summary>How long the server waits for an ack before redelivering. From 1 s to 1 day. Default 30 s.</summary>
    public TimeSpan AckWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Most deliveries of one message; the server then stops delivering it (it stays in the stream).
    /// -1 for no limit. Default 20: above the pipeline's <c>MaxAttempts</c>, so the pipeline
    /// terminates a failing command before the server silently stops delivering it.
    /// </summary>
    public long MaxDeliver { get; init; } = 20;

    /// <summary>Most messages one fetch asks for, and so most held in the fetch buffer. Default 128.</summary>
    [SettingRange(1, 10_000)]
    public int FetchBatch { get; init; } = 128;

    /// <summary>
    /// How long one pull request waits on the server for messages. Default 1 s: a lost request
    /// after a restart is replaced quickly, and a stop, which waits for the request in progress to
    /// end on the server before it gives anything back (see docs/nats.md), waits at most this long.
    /// A busy stream fills requests at once, whatever this is.
    /// </summary>
    public TimeSpan FetchExpires { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a held message is renewed (<c>+WPI</c>); at most a third of <see cref="AckWait"/>. Null: a third of <see cref="AckWait"/>.</summary>
    public TimeSpan? KeepAliveInterval { get; init; }

    /// <summary>Longest one ack, nak, terminate or renewal may wait (e.g. while disconnected). More than 0, at most 1 day. Default 5 s.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Ack as a request the server confirms (slower, surer). Default false: fire-and-forget, as the notes measured.</summary>
    public bool DoubleAck { get; init; }

    /// <summary>
    /// When set, <c>NextAsync</c> returns null (the source is exhausted) once no message has arrived
    /// for this long (at most 1 day): for batch jobs and tests. Default null: a worker runs until stopped.
    /// </summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>
    /// With <see cref="IdleTimeout"/>: once idle, while the consumer still holds messages this
    /// source does not (awaiting an ack elsewhere, e.g. a killed worker's until their ack wait
    /// ends, or naked with a delay) or has messages pending, keep fetching (they come back here)
    /// until it holds none, or until nothing has arrived for this long; it is asked again every
    /// <see cref="IdleTimeout"/>. For a batch job that must finish the work a dead worker left:
    /// give it more than <see cref="AckWait"/>. Default null: end at the first idle timeout,
    /// whatever the consumer holds.
    /// </summary>
    public TimeSpan? DrainTimeout { get; init; }

    /// <summary>Backoff of the fetch loop after a failure (a restart, a missing stream): 250 ms doubling to 10 s, forever.</summary>
    public Backoff ReconnectBackoff { get; init; } = new() { Base = TimeSpan.FromMilliseconds(250), Max = TimeSpan.FromSeconds(10) };

    /// <summary>The keep-alive interval in force.</summary>
    public TimeSpan EffectiveKeepAliveInterval => KeepAliveInterval ?? AckWait / 3;

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
        RequireName(errors, Stream, nameof(Stream));
        RequireName(errors, Consumer, nameof(Consumer));
        if (Subjects is null || Subjects.Count == 0 || Subjects.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add(new ArgumentException("Subjects must list at least one non-empty subject.", nameof(Subjects)));
        }

        if (FilterSubject is { } filter && string.IsNullOrWhiteSpace(filter))
        {
            errors.Add(new ArgumentException("FilterSubject must be null (every subject) or a subject.", nameof(FilterSubject)));
        }

        if (MaxAckPending < 1)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(MaxAckPending), MaxAckPending, "MaxAckPending must be at least 1."));
        }

        // Every duration is bounded above as well: each is armed as a timer (which refuses more than
        // about 49.7 days) while the worker runs, not when it starts. A day is --ack-wait-ms's bound.
        if (AckWait < TimeSpan.FromSeconds(1) || AckWait > SettingLimits.Longest)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(AckWait), AckWait, "AckWait must be from 1 s to 1 day."));
        }

        if (MaxDeliver is 0 or < -1)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(MaxDeliver), MaxDeliver, "MaxDeliver must be -1 (no limit) or at least 1."));
        }

        if (FetchBatch is < 1 or > 10_000)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(FetchBatch), FetchBatch, "FetchBatch must be from 1 to 10000."));
        }

        if (FetchBatch > MaxAckPending)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(FetchBatch), FetchBatch, $"FetchBatch ({FetchBatch}) must not exceed MaxAckPending ({MaxAckPending}): a fetch could never be filled."));
        }

        // NATS.Net refuses a pull that expires in less than a second: every fetch would fail, and be retried, forever.
        if (FetchExpires < TimeSpan.FromSeconds(1) || FetchExpires > TimeSpan.FromMinutes(5))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(FetchExpires), FetchExpires, "FetchExpires must be from 1 s to 5 min."));
        }

        var keepAlive = EffectiveKeepAliveInterval;
        // A message handed from the fetch buffer to the pipeline can go two intervals unrenewed
        // (the buffer's last renewal, then the pipeline's first); a third keeps that inside the ack wait with room.
        if (keepAlive <= TimeSpan.Zero || keepAlive > AckWait / 3)
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(KeepAliveInterval), keepAlive, $"KeepAliveInterval must be positive and at most a third of AckWait ({AckWait}), so a renewal always lands before the server gives up."));
        }

        if (!SettingLimits.IsDuration(SettleTimeout, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(SettleTimeout), SettleTimeout, $"SettleTimeout {SettingLimits.DurationRange(positive: true)}."));
        }

        if (IdleTimeout is { } idle && !SettingLimits.IsDuration(idle, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(IdleTimeout), idle, $"IdleTimeout {SettingLimits.DurationRange(positive: true)} (or null: never)."));
        }

        if (DrainTimeout is { } drain && (IdleTimeout is not { } idleFirst || drain < idleFirst || drain > SettingLimits.Longest))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(DrainTimeout), drain, "DrainTimeout needs IdleTimeout, and must be at least as long and at most 1 day (or null: end at the first idle timeout)."));
        }

        if (ReconnectBackoff is null || ReconnectBackoff.Base <= TimeSpan.Zero || ReconnectBackoff.Max < ReconnectBackoff.Base || ReconnectBackoff.Max > SettingLimits.Longest)
        {
            errors.Add(new ArgumentException("ReconnectBackoff must have 0 < Base <= Max <= 1 day.", nameof(ReconnectBackoff)));
        }

        return errors;
    }

    /// <summary>
    /// Throws the first of <see cref="FindErrorsFor"/>: these settings alone, then with
    /// <paramref name="pipeline"/>'s (a pipeline that could never fill, or a failing command the
    /// server would stop delivering before the pipeline gives up on it).
    /// </summary>
    public void ValidateFor(PipelineOptions pipeline)
    {
        if (FindErrorsFor(pipeline) is [var first, ..])
        {
            throw first;
        }
    }

    /// <summary>Every setting that cannot work alone (<see cref="FindErrors"/>) or with <paramref name="pipeline"/>'s.</summary>
    public IReadOnlyList<ArgumentException> FindErrorsFor(PipelineOptions pipeline)
    {
        var errors = new List<ArgumentException>();
        ArgumentNullException.ThrowIfNull(pipeline);
        errors.AddRange(FindErrors());
        if (MaxAckPending < (long)pipeline.MaxInFlight + FetchBatch)
        {
            errors.Add(new ArgumentOutOfRangeException(
                nameof(MaxAckPending),
                MaxAckPending,
                $"MaxAckPending ({MaxAckPending}) must be at least MaxInFlight ({pipeline.MaxInFlight}) + FetchBatch ({FetchBatch}): the server stops delivering at MaxAckPending, so the pipeline could never fill."));
        }

        if (pipeline.AckMode == AckMode.AckAfterDispatch && MaxDeliver != -1 && MaxDeliver < pipeline.MaxAttempts)
        {
            errors.Add(new ArgumentOutOfRangeException(
                nameof(MaxDeliver),
                MaxDeliver,
                $"MaxDeliver ({MaxDeliver}) must be at least MaxAttempts ({pipeline.MaxAttempts}) (or -1): the server would stop delivering a failing command before the pipeline terminates it, leaving it pending for good."));
        }

        return errors;
    }

    private static void RequireName(List<ArgumentException> errors, string value, string name)
    {
        if (string.IsNullOrWhiteSpace(value) || value.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0)
        {
            errors.Add(new ArgumentException($"{name} must be a non-empty name without spaces, '.', '*' or '>' (it is \"{value}\").", name));
        }
    }
}
