using System.Diagnostics;
using System.Globalization;

namespace Pipeline.Bench;

/// <summary>
/// <c>--quick-store [sqlite|postgres] [count] [names]</c>: each <see cref="StoreBenchmarks"/> method
/// once per store (both when none is named) over <c>count</c> commands (default 20,000; the
/// one-by-one rows over a twentieth of it), one line each with commands/s and the load average (and
/// under the pipeline's, the store calls it made and how many batches each carried),
/// for a fast look while tuning. Names (comma separated): enqueue1, enqueue500, claim1, claim16,
/// claim128, pipeline, pipeline256, naive; default all. The recorded figures come from BenchmarkDotNet.
/// </summary>
internal static class QuickStore
{
    public static async Task RunAsync(string[] args)
    {
        var stores = args.Length > 1 && args[1] is "sqlite" or "postgres" ? [args[1]] : new[] { "sqlite", "postgres" };
        var count = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : StoreBenchmarks.Count;
        var only = args.Length > 3 ? args[3].Split(',') : null;
        foreach (var store in stores)
        {
            var bench = new StoreBenchmarks { Store = store, Commands = count, FewCommands = Math.Max(count / 20, 1), CountCalls = true };
            bench.Setup();
            try
            {
                foreach (var (name, setup, run, commands) in new (string, Action, Func<Task>, int)[]
                {
                    ("enqueue1", bench.OpenEmpty, bench.EnqueueOneCall, count),
                    ("enqueue500", bench.OpenEmpty, bench.EnqueueCallsOf500, count),
                    ("claim1", bench.OpenFilledFew, bench.ClaimComplete1, bench.FewCommands),
                    ("claim16", bench.OpenFilled, bench.ClaimComplete16, count),
                    ("claim128", bench.OpenFilled, bench.ClaimComplete128, count),
                    ("pipeline", bench.OpenFilled, bench.Pipeline, count),
                    ("pipeline256", bench.OpenFilled, bench.PipelineDispatch256, count),
                    ("naive", bench.FillNaive, bench.Naive, bench.FewCommands),
                })
                {
                    if (only is not null && !only.Contains(name))
                    {
                        continue;
                    }

                    setup();
                    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                    var clock = Stopwatch.StartNew();
                    await run();
                    clock.Stop();
                    cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
                    bench.Drop();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{store,-8} {name,-10} {commands,7:N0} in {clock.Elapsed.TotalMilliseconds,8:N0} ms = {commands / clock.Elapsed.TotalSeconds,9:N0} commands/s  cpu {cpu.TotalMicroseconds / commands,6:0.0} us/cmd  load {Load()}"));
                    if (bench.LastCounts is { } counts && name is "pipeline" or "pipeline256" or "claim128" or "claim16")
                    {
                        Console.WriteLine($"         store calls: {counts}");
                    }
                }
            }
            finally
            {
                bench.Cleanup();
            }
        }
    }

    private static string Load()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
