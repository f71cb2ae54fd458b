using System.Diagnostics;
using System.Diagnostics.Metrics;
using Pipeline.Engine;

namespace Pipeline.Telemetry;

/// <summary>
/// The pipeline's OpenTelemetry sources: add <see cref="Name"/> to a tracer provider
/// (<c>AddSource</c>) and a meter provider (<c>AddMeter</c>). Names and attributes follow the
/// OpenTelemetry messaging semantic conventions where one fits (<c>process {destination}</c> spans,
/// <c>messaging.process.duration</c>, <c>messaging.client.consumed.messages</c>); the rest keep
/// <c>pipeline.*</c> names. The counters and gauges are observable: they read the same
/// <see cref="PipelineStats"/> the pipeline keeps anyway, so the hot path updates one set of
/// counts and a listener costs nothing until it collects.
/// </summary>
public static class PipelineTelemetry
{
    /// <summary>The name of both the activity source and the meter.</summary>
    public const string Name = "Pipeline";

    /// <summary>The span around one tool run (a child of the command's <c>process</c> span).</summary>
    public const string DispatchSpanName = "pipeline.dispatch";

    private static readonly object Gate = new();
    private static Tracked[] _running = [];

    /// <summary>
    /// Spans: one <c>process {destination}</c> (kind Consumer) per pulled item, from pull to the end
    /// of its path, parented to the trace context the item carried (<see cref="Commands.Pulled{THandle}.Parent"/>);
    /// under it one <see cref="DispatchSpanName"/> per dispatch.
    /// </summary>
    public static ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>The meter all instruments belong to.</summary>
    public static Meter Meter { get; } = new(Name);

    internal static Histogram<double> ProcessDuration { get; } = Meter.CreateHistogram<double>(
        "messaging.process.duration", unit: "s", description: "Time a command's tool run took.");

    static PipelineTelemetry()
    {
        Counter("messaging.client.consumed.messages", "{message}", "Messages (items) the source handed to the pipeline.", s => s.Pulled, receive: true);
        Counter("pipeline.items.acked", "{item}", "Acks the source accepted.", s => s.Acked);
        Counter("pipeline.items.nacked", "{item}", "Nacks the source accepted.", s => s.Nacked);
        Counter("pipeline.items.terminated", "{item}", "Terminates the source accepted.", s => s.Terminated);
        Counter("pipeline.settle.errors", "{item}", "Settle calls that failed or timed out.", s => s.SettleErrors);
        Counter("pipeline.commands.completed", "{command}", "Commands whose tool succeeded.", s => s.Completed);
        Counter("pipeline.commands.failed", "{command}", "Commands given up on: their tool failed and they are not redelivered.", s => s.Failed);
        Counter("pipeline.commands.retried", "{command}", "Failed tool runs whose command was nacked for redelivery.", s => s.Retried);
        Counter("pipeline.events.dropped", "{event}", "Events the sink never took.", s => s.EventsDropped);
        Meter.CreateObservableGauge("pipeline.in_flight", () => Each(static s => s.InFlight), unit: "{item}", description: "Items pulled and not yet settled.");
        Meter.CreateObservableGauge("pipeline.block.queue.depth", () => EachBlock(static load => load.Queued, includePull: false), unit: "{item}", description: "Items waiting at each block's input (pipeline.block: claim, ack, dispatch, emit).");
        Meter.CreateObservableGauge("pipeline.block.running", () => EachBlock(static load => load.Running, includePull: true), unit: "{item}", description: "Items each block is working on (pull: NextAsync calls in progress; dispatch: tools running).");
        Meter.CreateObservableGauge("pipeline.pull.free_slots", () => Each(static s => (long)s.Blocks.Pull.Queued), unit: "{item}", description: "In-flight slots free for the next pulls.");
    }

    /// <summary>Makes a running pipeline's counts visible to the instruments until disposed.</summary>
    internal static IDisposable Track(PipelineStats stats, string workerId, SourceTelemetry source)
    {
        var entry = new Tracked(stats, [new("pipeline.worker_id", workerId), .. source.MetricTags], source.ReceiveTags(workerId));
        lock (Gate)
        {
            _running = [.. _running, entry];
        }

        return new Untrack(entry);
    }

    /// <summary>
    /// Starts the <c>process</c> span of one item, parented to <paramref name="parent"/> or a new
    /// root when it is <c>default</c> (never to whatever span the pulling thread happens to have).
    /// Null when nobody listens. The span is carried by the delivery, not by the caller's context.
    /// </summary>
    internal static Activity? StartProcess(SourceTelemetry source, in ActivityContext parent)
    {
        var previous = Activity.Current;
        if (previous is not null)
        {
            Activity.Current = null; // no parent from the puller's context: only the item's own
        }

        var activity = ActivitySource.StartActivity(source.ProcessSpanName, ActivityKind.Consumer, parent);
        if (activity is not null || previous is not null)
        {
            Activity.Current = previous;
        }

        return activity;
    }

    private static void Counter(string name, string unit, string description, Func<PipelineStats, long> read, bool receive = false) =>
        Meter.CreateObservableCounter(name, () => Each(read, receive), unit: unit, description: description);

    private static IEnumerable<Measurement<long>> Each(Func<PipelineStats, long> read, bool receive = false)
    {
        foreach (var entry in Volatile.Read(ref _running))
        {
            yield return new Measurement<long>(read(entry.Stats), receive ? entry.ReceiveTags : entry.Tags);
        }
    }

    private static IEnumerable<Measurement<long>> EachBlock(Func<BlockLoad, int> read, bool includePull)
    {
        foreach (var entry in Volatile.Read(ref _running))
        {
            // One scan of the deliveries per collection, for every block.
            var blocks = entry.Stats.Blocks;
            if (includePull)
            {
                yield return Block(entry, "pull", read(blocks.Pull));
            }

            yield return Block(entry, "claim", read(blocks.Claim));
            yield return Block(entry, "ack", read(blocks.AckDecision));
            yield return Block(entry, "dispatch", read(blocks.Dispatch));
            yield return Block(entry, "emit", read(blocks.Emit));
        }
    }

    private static Measurement<long> Block(Tracked entry, string block, int value) =>
        new(value, [.. entry.Tags, new("pipeline.block", block)]);

    private sealed record Tracked(PipelineStats Stats, KeyValuePair<string, object?>[] Tags, KeyValuePair<string, object?>[] ReceiveTags);

    private sealed class Untrack(Tracked entry) : IDisposable
    {
        public void Dispose()
        {
            lock (Gate)
            {
                _running = [.. _running.Where(e => !ReferenceEquals(e, entry))];
            }
        }
    }
}
