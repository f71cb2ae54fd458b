using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Pipeline.Bench;

/// <summary>
/// Short in-process jobs sized for a 2-core machine: each operation is one command (the
/// benchmarks set OperationsPerInvoke), so Mean is time per command and Allocated is bytes per
/// command. A commands/s column is added.
/// </summary>
public sealed class BenchConfig : ManualConfig
{
    private const int Iterations = 8;

    public BenchConfig()
    {
        AddJob(Job.Default
            // 20 min, not the default 5: a durable store's iteration that commits per command runs
            // for tens of seconds on a loaded machine (StoreBenchmarks).
            .WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(20), logOutput: true))
            .WithLaunchCount(1)
            .WithWarmupCount(2)
            .WithIterationCount(Iterations)
            .WithId("short"));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumnProvider(DefaultColumnProviders.Instance);
        AddColumn(new CommandsPerSecondColumn());
        AddColumn(new LatencyColumn("p50", 0.50, Iterations), new LatencyColumn("p99", 0.99, Iterations));
        AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default);
        AddExporter(BenchmarkDotNet.Exporters.MarkdownExporter.GitHub);
        WithOptions(ConfigOptions.DisableOptimizationsValidator);
    }

    private sealed class CommandsPerSecondColumn : IColumn
    {
        public string Id => "CommandsPerSecond";

        public string ColumnName => "Commands/s";

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => 0;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => "Commands per second (1 / Mean)";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var report = summary[benchmarkCase];
            var mean = report?.ResultStatistics?.Mean;
            return mean is > 0 ? (1e9 / mean.Value).ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : "-";
        }

        public bool IsAvailable(Summary summary) => true;

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    }
}
