using System.Collections.Concurrent;
using System.Diagnostics;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Pipeline.Bench;

/// <summary>
/// Latencies a benchmark recorded, per iteration, read by the p50/p99 columns. The jobs run in
/// process, so the summary sees what the benchmark stored.
/// </summary>
internal static class LatencyResults
{
    private static readonly ConcurrentDictionary<string, ConcurrentQueue<long[]>> Runs = new();

    public static void Add(string method, long[] latencies) => Runs.GetOrAdd(method, _ => new()).Enqueue(latencies);

    /// <summary>The last iteration's latencies, in publish order.</summary>
    public static long[]? Last(string method) => Runs.TryGetValue(method, out var runs) && !runs.IsEmpty ? runs.Last() : null;

    /// <summary>The <paramref name="quantile"/> of <paramref name="latencies"/> (ticks), in ms.</summary>
    public static double Quantile(IEnumerable<long> latencies, double quantile)
    {
        var all = latencies.Order().ToArray();
        var index = (int)Math.Min(all.Length - 1, Math.Ceiling(quantile * all.Length) - 1);
        return all[Math.Max(0, index)] * 1000.0 / Stopwatch.Frequency;
    }

    /// <summary>The <paramref name="quantile"/> over the last <paramref name="iterations"/> iterations (the measured ones, after the warmups), in ms.</summary>
    public static double? Quantile(string method, double quantile, int iterations)
    {
        if (!Runs.TryGetValue(method, out var runs) || runs.IsEmpty)
        {
            return null;
        }

        var all = runs.Reverse().Take(iterations).SelectMany(r => r).Order().ToArray();
        var index = (int)Math.Min(all.Length - 1, Math.Ceiling(quantile * all.Length) - 1);
        return all[Math.Max(0, index)] * 1000.0 / Stopwatch.Frequency;
    }
}

/// <summary>A publish → completion latency quantile column ("-" for benchmarks that record none).</summary>
internal sealed class LatencyColumn(string name, double quantile, int iterations) : IColumn
{
    public string Id => $"Latency{name}";

    public string ColumnName => $"{name} latency";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 1;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => $"{name} of publish → command.completed at the sink, over the measured iterations' messages";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        LatencyResults.Quantile(benchmarkCase.Descriptor.WorkloadMethod.Name, quantile, iterations) is { } ms
            ? ms.ToString("0.00 'ms'", System.Globalization.CultureInfo.InvariantCulture)
            : "-";

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
