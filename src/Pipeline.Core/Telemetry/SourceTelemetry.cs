using System.Diagnostics;
using Pipeline.Commands;
using Pipeline.Engine;
using Pipeline.Sources;

namespace Pipeline.Telemetry;

/// <summary>
/// What one pipeline's spans and metrics say about its source, worked out once when it is built:
/// the <c>process</c> span's name and the messaging attributes (none for a source that does not
/// describe itself: see <see cref="ISupportsTelemetry{THandle}"/>).
/// </summary>
internal sealed class SourceTelemetry
{
    public SourceTelemetry(string? system, string? destination, string? consumerGroup)
    {
        System = system;
        Destination = destination;
        ConsumerGroup = consumerGroup;
        ProcessSpanName = string.IsNullOrEmpty(destination) ? "process" : $"process {destination}";
        List<KeyValuePair<string, object?>> tags = [];
        Add(tags, "messaging.system", system);
        Add(tags, "messaging.destination.name", destination);
        Add(tags, "messaging.consumer.group.name", consumerGroup);
        MetricTags = [.. tags];
    }

    public string? System { get; }

    public string? Destination { get; }

    public string? ConsumerGroup { get; }

    /// <summary><c>process {destination}</c>, or <c>process</c> when the destination is not known.</summary>
    public string ProcessSpanName { get; }

    /// <summary>The messaging attributes every metric of this pipeline carries.</summary>
    public KeyValuePair<string, object?>[] MetricTags { get; }

    public static SourceTelemetry For<THandle>(SourceCapabilities<THandle> source) =>
        source.Telemetry is { } t ? new(t.MessagingSystem, t.DestinationName, t.ConsumerGroupName) : new(null, null, null);

    /// <summary>The tags of <c>messaging.client.consumed.messages</c>: the metric tags plus the operation.</summary>
    public KeyValuePair<string, object?>[] ReceiveTags(string workerId) =>
        [new("pipeline.worker_id", workerId), .. MetricTags, new("messaging.operation.name", "receive"), new("messaging.operation.type", "receive")];

    /// <summary>Sets the attributes of a new <c>process</c> span (only when it records).</summary>
    public void Describe<THandle>(Activity activity, ISupportsTelemetry<THandle>? source, THandle handle, Command? command, string workerId)
    {
        if (!activity.IsAllDataRequested)
        {
            return;
        }

        activity.SetTag("messaging.operation.type", "process");
        activity.SetTag("messaging.operation.name", "process");
        if (System is not null)
        {
            activity.SetTag("messaging.system", System);
        }

        if (Destination is not null)
        {
            activity.SetTag("messaging.destination.name", Destination);
        }

        if (ConsumerGroup is not null)
        {
            activity.SetTag("messaging.consumer.group.name", ConsumerGroup);
        }

        if (source?.MessageIdOf(handle) is { } id)
        {
            activity.SetTag("messaging.message.id", id);
        }

        activity.SetTag("pipeline.worker_id", workerId);
        if (command is not null)
        {
            activity.SetTag("pipeline.command_id", command.CommandId);
            activity.SetTag("pipeline.execution_id", command.ExecutionId);
            activity.SetTag("pipeline.tool_kind", command.ToolKind);
            activity.SetTag("pipeline.attempts", command.Attempts);
        }
    }

    /// <summary>Records one tool run's duration on <c>messaging.process.duration</c> (nothing when nobody listens).</summary>
    public void RecordProcess(TimeSpan duration, bool failed)
    {
        if (!PipelineTelemetry.ProcessDuration.Enabled)
        {
            return;
        }

        var tags = new TagList { { "messaging.operation.name", "process" }, { "messaging.operation.type", "process" } };
        foreach (var tag in MetricTags)
        {
            tags.Add(tag);
        }

        if (failed)
        {
            tags.Add("error.type", "tool_failed");
        }

        PipelineTelemetry.ProcessDuration.Record(duration.TotalSeconds, tags);
    }

    private static void Add(List<KeyValuePair<string, object?>> tags, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            tags.Add(new(name, value));
        }
    }
}
