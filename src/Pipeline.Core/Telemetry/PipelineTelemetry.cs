using System.Diagnostics;
using System.Diagnostics.Metrics;
using Pipeline.Engine;

namespace Pipeline.Telemetry;

/// <summary>
/// The pipeline's OpenTelemetry sources: add <see cref="Name"/> to a tracer provider
/// (<c>AddSource</c>) and a meter provider (<c>AddMeter</c>). The counters and gauges are
/// observable: they read the same <see cref="PipelineStats"/> the pipeline keeps anyway, so the
/// hot path updates one set of counts and a listener costs nothing until it collects.
/// </summary>
public static class PipelineTelemetry
{
    /// <summary>The name of both the activity source and the meter.</summary>
    public const string Name = "Pipeline";

    private static readonly object Gate = new();
    private static (PipelineStats Stats, KeyValuePair<string, object?> Worker)[] _running = [];

    /// <summary>Spans: one <c>pipeline.dispatch</c> per dispatched command.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>The meter all instruments belong to.</summary>
    public static Meter Meter { get; } = new(Name);

    internal static Histogram<double> DispatchDuration { get; } = Meter.CreateHistogram<double>("pipeline.dispatch.duration", unit: "ms", description: "Time a tool run took.");

    static PipelineTelemetry()
    {
        Counter("pipeline.items.pulled", "Items returned by the source.", s => s.Pulled);
        Counter("pipeline.items.acked", "Acks the source accepted.", s => s.Acked);
        Counter("pipeline.items.nacked", "Nacks the source accepted.", s => s.Nacked);
        Counter("pipeline.items.terminated", "Terminates the source accepted.", s => s.Terminated);
        Counter("pipeline.settle.errors", "Settle calls that failed or timed out.", s => s.SettleErrors);
        Counter("pipeline.commands.completed", "Tool runs that succeeded.", s => s.Completed);
        Counter("pipeline.commands.failed", "Tool runs that failed.", s => s.Failed);
        Counter("pipeline.events.dropped", "Events the sink never took.", s => s.EventsDropped);
        Meter.CreateObservableGauge("pipeline.items.in_flight", () => Each(s => s.InFlight), description: "Handles pulled and not yet settled.");
        Meter.CreateObservableGauge("pipeline.dispatch.running", () => Each(s => s.Blocks.Dispatch.Running), description: "Tools running now.");
        Meter.CreateObservableGauge("pipeline.dispatch.queued", () => Each(s => s.Blocks.Dispatch.Queued), description: "Items waiting for a dispatch slot.");
    }

    /// <summary>Makes a running pipeline's counts visible to the instruments until disposed.</summary>
    internal static IDisposable Track(PipelineStats stats, string workerId)
    {
        var entry = (stats, new KeyValuePair<string, object?>("pipeline.worker_id", workerId));
        lock (Gate)
        {
            _running = [.. _running, entry];
        }

        return new Untrack(entry);
    }

    private static void Counter(string name, string description, Func<PipelineStats, long> read) =>
        Meter.CreateObservableCounter(name, () => Each(read), description: description);

    private static IEnumerable<Measurement<long>> Each(Func<PipelineStats, long> read)
    {
        foreach (var (stats, worker) in Volatile.Read(ref _running))
        {
            yield return new Measurement<long>(read(stats), worker);
        }
    }

    private static IEnumerable<Measurement<int>> Each(Func<PipelineStats, int> read)
    {
        foreach (var (stats, worker) in Volatile.Read(ref _running))
        {
            yield return new Measurement<int>(read(stats), worker);
        }
    }

    private sealed class Untrack((PipelineStats Stats, KeyValuePair<string, object?> Worker) entry) : IDisposable
    {
        public void Dispose()
        {
            lock (Gate)
            {
                _running = [.. _running.Where(e => !ReferenceEquals(e.Stats, entry.Stats))];
            }
        }
    }
}
