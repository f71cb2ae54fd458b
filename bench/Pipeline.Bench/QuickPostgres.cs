using System.Diagnostics;

namespace Pipeline.Bench;

/// <summary>
/// <c>--quick-postgres [rounds] [claimers]</c>: the PostgreSQL store's enqueue, claim + complete
/// (128 sessions per claim, one batch each, one settle call per claim) and the naive one-row-per-
/// transaction baseline, timed outside BenchmarkDotNet in one run, for a fast look while tuning.
/// </summary>
internal static class QuickPostgres
{
    public static async Task RunAsync(string[] args)
    {
        var rounds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var claimers = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1;
        const int NaiveCount = 2_000;
        await using var workload = await PostgresStoreWorkload.StartAsync();
        for (var round = 0; round < rounds; round++)
        {
            await workload.ResetAsync();
            var drafts = PostgresStoreWorkload.Drafts();
            var self = Process.GetCurrentProcess();
            var clock = Stopwatch.StartNew();
            var (serverCpu, cpu) = (workload.ServerCpu(), self.TotalProcessorTime);
            await workload.Store.EnqueueAsync(drafts, CancellationToken.None);
            var enqueue = clock.Elapsed;
            self.Refresh();
            var (enqueueServer, enqueueCpu) = (workload.ServerCpu() - serverCpu, self.TotalProcessorTime - cpu);

            clock.Restart();
            (serverCpu, cpu) = (workload.ServerCpu(), self.TotalProcessorTime);
            var drained = await workload.DrainAsync(128, claimers);
            var drain = clock.Elapsed;
            self.Refresh();
            var (drainServer, drainCpu) = (workload.ServerCpu() - serverCpu, self.TotalProcessorTime - cpu);
            if (drained != PostgresStoreWorkload.Count)
            {
                throw new InvalidOperationException($"Drained {drained} of {PostgresStoreWorkload.Count}.");
            }

            await workload.FillNaiveAsync(NaiveCount);
            clock.Restart();
            var naive = await workload.NaiveDrainAsync();
            var naiveTime = clock.Elapsed;

            Console.WriteLine(
                $"cpu us/batch: enqueue server {enqueueServer.TotalMicroseconds / PostgresStoreWorkload.Count:0.0} client {enqueueCpu.TotalMicroseconds / PostgresStoreWorkload.Count:0.0}; " +
                $"claim+complete server {drainServer.TotalMicroseconds / drained:0.0} client {drainCpu.TotalMicroseconds / drained:0.0}");
            Console.WriteLine(
                $"enqueue {PostgresStoreWorkload.Count / enqueue.TotalSeconds,10:N0}/s ({enqueue.TotalMilliseconds:N0} ms)  " +
                $"claim+complete x{claimers} {drained / drain.TotalSeconds,10:N0}/s ({drain.TotalMilliseconds:N0} ms)  " +
                $"naive {naive / naiveTime.TotalSeconds,8:N0}/s  ratio {drained / drain.TotalSeconds / (naive / naiveTime.TotalSeconds),5:N1}x");
        }
    }
}
