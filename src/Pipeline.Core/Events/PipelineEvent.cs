using System.Text.Json;

namespace Pipeline.Events;

/// <summary>
/// The one envelope every event uses. A struct so emitting allocates nothing; sinks receive
/// batches of them and must not keep the batch after <see cref="IEventSink.WriteAsync"/> returns.
/// </summary>
public readonly record struct PipelineEvent
{
    /// <summary>What happened: one of <see cref="EventTypes"/>.</summary>
    public required string EventType { get; init; }

    /// <summary>NoETL-style status: STARTED, COMPLETED, FAILED, SKIPPED, CLAIMED, RETRY.</summary>
    public required string Status { get; init; }

    /// <summary>When the event was created (the pipeline's clock).</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The execution of the command, 0 when unknown (a malformed item).</summary>
    public long ExecutionId { get; init; }

    /// <summary>The command's step, when known.</summary>
    public string? Step { get; init; }

    /// <summary>The command's id, when known.</summary>
    public string? CommandId { get; init; }

    /// <summary>The tool kind, when known.</summary>
    public string? ToolKind { get; init; }

    /// <summary>The worker that emitted the event.</summary>
    public string? WorkerId { get; init; }

    /// <summary>The command's attempts when it was pulled.</summary>
    public int Attempts { get; init; }

    /// <summary>How long the dispatch took, for completed and failed events.</summary>
    public double? DurationMs { get; init; }

    /// <summary>The tool's result; <see cref="JsonValueKind.Undefined"/> when there is none.</summary>
    public JsonElement Result { get; init; }

    /// <summary>The error or reason, for failures, retries and skips.</summary>
    public string? Error { get; init; }
}

/// <summary>The event vocabulary.</summary>
public static class EventTypes
{
    /// <summary>This worker owns the command.</summary>
    public const string CommandClaimed = "command.claimed";

    /// <summary>The tool was started.</summary>
    public const string CommandStarted = "command.started";

    /// <summary>The tool succeeded.</summary>
    public const string CommandCompleted = "command.completed";

    /// <summary>The tool failed, timed out, or the tool kind is unknown; or the command was given up on.</summary>
    public const string CommandFailed = "command.failed";

    /// <summary>Acked without running: claimed elsewhere, or a duplicate delivery of a command handled here.</summary>
    public const string CommandSkipped = "command.skipped";

    /// <summary>The claim failed transiently; the item was nacked for redelivery.</summary>
    public const string ClaimRetry = "claim.retry";

    /// <summary>The claim failed terminally (malformed command, refused claim).</summary>
    public const string ClaimFailed = "claim.failed";
}

/// <summary>The status strings events carry.</summary>
public static class EventStatus
{
    /// <summary>Claimed.</summary>
    public const string Claimed = "CLAIMED";

    /// <summary>Started.</summary>
    public const string Started = "STARTED";

    /// <summary>Completed.</summary>
    public const string Completed = "COMPLETED";

    /// <summary>Failed.</summary>
    public const string Failed = "FAILED";

    /// <summary>Skipped.</summary>
    public const string Skipped = "SKIPPED";

    /// <summary>Will be retried.</summary>
    public const string Retry = "RETRY";
}
