using System.Diagnostics;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Sources;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// <c>--quick [count] [parallelism]</c>: one timed end-to-end run outside BenchmarkDotNet, for a
/// fast look while tuning. The recorded figures come from the BenchmarkDotNet classes.
/// </summary>
internal static class QuickRun
{
    public static async Task RunAsync(string[] args)
    {
        var count = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
        var parallelism = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 16;

        var commands = BenchCommands.Make(count, "noop", "{}");
        var tools = new ToolRegistry([new NoopTool()]);
        for (var round = 0; round < 5; round++)
        {
            var source = InMemoryCommandSource.From(commands);
            var sink = new CountingSink();
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            await new CommandPipeline<DeliveryHandle>(source, tools, sink, BenchCommands.NoopOptions(parallelism)).RunAsync(CancellationToken.None);

            clock.Stop();
            allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            Console.WriteLine($"{count / clock.Elapsed.TotalSeconds,12:N0} commands/s  {(double)allocated / count,6:0.0} B/command  events {sink.Count}");
        }
    }
}
