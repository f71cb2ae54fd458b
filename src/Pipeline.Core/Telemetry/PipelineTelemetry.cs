using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Pipeline.Telemetry;

/// <summary>
/// The pipeline's OpenTelemetry sources: add <see cref="Name"/> to a tracer provider
/// (<c>AddSource</c>) and a meter provider (<c>AddMeter</c>). Instruments cost next to nothing
/// while nobody listens.
/// </summary>
public static class PipelineTelemetry
{
    /// <summary>The name of both the activity source and the meter.</summary>
    public const string Name = "Pipeline";

    /// <summary>Spans: one <c>pipeline.dispatch</c> per dispatched command.</summary>
    public static ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>The meter all instruments belong to.</summary>
    public static Meter Meter { get; } = new(Name);

    internal static Counter<long> Pulled { get; } = Meter.CreateCounter<long>("pipeline.items.pulled", description: "Items returned by the source.");

    internal static Counter<long> Acked { get; } = Meter.CreateCounter<long>("pipeline.items.acked", description: "Handles acked.");

    internal static Counter<long> Nacked { get; } = Meter.CreateCounter<long>("pipeline.items.nacked", description: "Handles nacked.");

    internal static Counter<long> Terminated { get; } = Meter.CreateCounter<long>("pipeline.items.terminated", description: "Handles terminated as poison.");

    internal static Counter<long> Completed { get; } = Meter.CreateCounter<long>("pipeline.commands.completed", description: "Tool runs that succeeded.");

    internal static Counter<long> Failed { get; } = Meter.CreateCounter<long>("pipeline.commands.failed", description: "Tool runs that failed.");

    internal static Histogram<double> DispatchDuration { get; } = Meter.CreateHistogram<double>("pipeline.dispatch.duration", unit: "ms", description: "Time a tool run took.");
}
