using System.Diagnostics;

namespace Pipeline.Bench;

/// <summary>
/// <c>--quick-nats [rounds] [names]</c>: the NATS benchmark's methods and some variants (comma
/// separated: pipeline, raw, source, nodecode, rawfetch, rawmeta, noka, pull1, latency; default
/// pipeline,raw), interleaved and timed outside BenchmarkDotNet with process and server CPU and
/// bytes per message, for a fast look while tuning; <c>parse</c> times the command decoders and
/// <c>profile</c> reads one stream again and again for a profiler. The recorded figures come from
/// <see cref="NatsBenchmarks"/>.
/// </summary>
internal static class QuickNats
{
    public static async Task RunAsync(string[] args)
    {
        var rounds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var only = args.Length > 2 ? args[2] : null;
        if (args.Length > 2 && args[2] == "parse")
        {
            var bodies = BenchCommands.Make(NatsBenchmarks.Count, "noop", "{}").Select(c => System.Text.Encoding.UTF8.GetBytes(c.ToJson())).ToArray();
            Console.WriteLine(System.Text.Encoding.UTF8.GetString(bodies[7]));
            for (var r = 0; r < rounds; r++)
            {
                var allocated = GC.GetTotalAllocatedBytes(precise: true);
                var clock = Stopwatch.StartNew();
                foreach (var body in bodies)
                {
                    _ = Pipeline.Nats.Messages.CommandDecoder.Instance.Decode(new Pipeline.Nats.Messages.NatsDeliveredMessage("s", body, null, 1, 1));
                }

                Console.WriteLine($"fast   {clock.Elapsed.TotalMicroseconds / bodies.Length:0.000} us/msg {(double)(GC.GetTotalAllocatedBytes(precise: true) - allocated) / bodies.Length:0} B/msg");
                allocated = GC.GetTotalAllocatedBytes(precise: true);
                clock.Restart();
                foreach (var body in bodies)
                {
                    _ = global::Pipeline.Commands.Command.ParseWithSerializer(body);
                }

                Console.WriteLine($"serial {clock.Elapsed.TotalMicroseconds / bodies.Length:0.000} us/msg {(double)(GC.GetTotalAllocatedBytes(precise: true) - allocated) / bodies.Length:0} B/msg");
            }

            return;
        }

        var bench = new NatsBenchmarks();
        bench.Setup();
        if (args.Length > 2 && args[2] == "profile")
        {
            // One stream, read again and again by fresh consumers: a profiler sees the pipeline, not the publishing.
            bench.Publish();
            for (var r = 0; r < rounds; r++)
            {
                bench.ConsumerName = $"profile{r}";
                var clock = Stopwatch.StartNew();
                await bench.Pipeline();
                Console.WriteLine($"pipeline {NatsBenchmarks.Count / clock.Elapsed.TotalSeconds,12:N0} msg/s");
            }

            bench.Cleanup();
            return;
        }

        try
        {
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, run) in new (string, Func<Task>)[] { ("pipeline", bench.Pipeline), ("raw", bench.RawConsume), ("source", bench.SourceLoop), ("nodecode", bench.SourceLoopNoDecode), ("rawfetch", bench.RawFetch), ("rawmeta", bench.RawMeta), ("noka", bench.PipelineNoKeepAlive), ("pull1", bench.PipelineOnePull), ("latency", bench.PipelineLatency) })
                {
                    if (only is not null ? !only.Split(',').Contains(name) : name is not ("pipeline" or "raw"))
                    {
                        continue;
                    }

                    if (name == "latency")
                    {
                        bench.CreateEmptyStream();
                    }
                    else
                    {
                        bench.Publish();
                    }

                    var self = Process.GetCurrentProcess();
                    self.Refresh();
                    bench.Server.Refresh();
                    var cpu = self.TotalProcessorTime;
                    var serverCpu = bench.Server.TotalProcessorTime;
                    var gcs = GC.CollectionCount(0);
                    var allocated = GC.GetTotalAllocatedBytes(precise: true);
                    var clock = Stopwatch.StartNew();
                    await run();
                    clock.Stop();
                    allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
                    self.Refresh();
                    bench.Server.Refresh();
                    cpu = self.TotalProcessorTime - cpu;
                    serverCpu = bench.Server.TotalProcessorTime - serverCpu;
                    bench.DeleteStream();
                    if (name == "latency")
                    {
                        Console.WriteLine($"latency    p50 {LatencyResults.Quantile("PipelineLatency", 0.5, 1):0.00} ms  p99 {LatencyResults.Quantile("PipelineLatency", 0.99, 1):0.00} ms  max {LatencyResults.Quantile("PipelineLatency", 1, 1):0.00} ms");
                        // Where the tail sits: the iteration's first 1,000 messages (its start) against the rest.
                        var last = LatencyResults.Last("PipelineLatency")!;
                        var head = Math.Min(last.Length, 1000);
                        var worst = Array.IndexOf(last, last.Max());
                        Console.WriteLine($"           first {head} msgs: p99 {LatencyResults.Quantile(last.Take(head), 0.99):0.00} ms; the rest: p50 {LatencyResults.Quantile(last.Skip(head), 0.5):0.00} ms p99 {LatencyResults.Quantile(last.Skip(head), 0.99):0.00} ms; worst at message {worst}");
                        continue;
                    }

                    Console.WriteLine($"{name,-10} {NatsBenchmarks.Count / clock.Elapsed.TotalSeconds,12:N0} msg/s  cpu {cpu.TotalMicroseconds / NatsBenchmarks.Count,6:0.00} us/msg  server {serverCpu.TotalMicroseconds / NatsBenchmarks.Count,6:0.00} us/msg  {(double)allocated / NatsBenchmarks.Count,7:0} B/msg  gen0 {GC.CollectionCount(0) - gcs}");
                }
            }
        }
        finally
        {
            bench.Cleanup();
        }
    }
}
