using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Nats.Sources;
using Pipeline.Testing;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// The Pipeline NATS source end to end (noop tool, ack before dispatch, every event to a counting
/// sink) against a raw NATS.Net <c>ConsumeAsync</c> + <c>AckAsync</c> loop, over the same number
/// of messages from a fresh stream each iteration, on one local nats-server started here (loopback).
/// Target: Pipeline at least 85% of the raw loop's messages/s. A third benchmark publishes at a fixed
/// rate (about half the Pipeline's peak here) into a running pipeline and reports the time from each
/// publish to its <c>command.completed</c> event reaching the sink (p50 and p99 columns).
/// </summary>
public class NatsBenchmarks
{
    internal const int Count = 50_000;

    /// <summary>Messages one latency iteration publishes.</summary>
    internal const int LatencyCount = 30_000;

    /// <summary>The latency benchmark's publish rate (messages/s): about half the Pipeline row's peak on the 2-core machine; <c>PIPELINE_BENCH_RATE</c> overrides it.</summary>
    internal static readonly int LatencyRate = int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_BENCH_RATE"), out var rate) && rate > 0 ? rate : 25_000;

    private readonly ToolRegistry _tools = new([new NoopTool()]);
    private string _root = null!;
    private Process _server = null!;

    internal Process Server => _server;
    private NatsConnection _connection = null!;
    private NatsConnection _publisher = null!;
    private string _stream = null!;
    private int _round;
    private NatsCommandSource? _openSource;
    private Task? _openRun;
    private byte[][] _latencyBodies = [];

    /// <summary>The durable consumer the Pipeline benchmark reads with (the profile mode reads one stream many times).</summary>
    internal string ConsumerName { get; set; } = "bench";

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), $"pipeline-bench-nats-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_root);
        var port = LoopbackPort.Free();
        var info = new ProcessStartInfo("nats-server") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-js", "-a", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-sd", _root, "-l", Path.Combine(_root, "log") })
        {
            info.ArgumentList.Add(a);
        }

        _server = Process.Start(info)!;
        _connection = new NatsConnection(NatsOpts.Default with { Url = $"nats://127.0.0.1:{port}", RetryOnInitialConnect = true });
        _connection.ConnectAsync().AsTask().GetAwaiter().GetResult();
        // The latency benchmark publishes on its own connection, as `pipeline enqueue` would.
        _publisher = new NatsConnection(NatsOpts.Default with { Url = $"nats://127.0.0.1:{port}" });
        _publisher.ConnectAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _publisher.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server.Kill();
        _server.WaitForExit();
        Directory.Delete(_root, recursive: true);
    }

    [IterationSetup(Targets = [nameof(Pipeline), nameof(RawConsume)])]
    public void Publish()
    {
        var js = CreateStream();
        // Distinct command ids: the engine skips a repeated id as a duplicate.
        var bodies = BenchCommands.Make(Count, "noop", "{}").Select(c => System.Text.Encoding.UTF8.GetBytes(c.ToJson())).ToArray();
        Task.Run(async () =>
        {
            var window = new List<Task>(256);
            for (var i = 0; i < Count; i++)
            {
                window.Add(Ack(js.PublishAsync($"{_stream}.c", bodies[i])));
                if (window.Count == 256)
                {
                    await Task.WhenAll(window);
                    window.Clear();
                }
            }

            await Task.WhenAll(window);
        }).GetAwaiter().GetResult();

        static async Task Ack(ValueTask<PubAckResponse> publish) => (await publish).EnsureSuccess();
    }

    [IterationSetup(Target = nameof(PipelineLatency))]
    public void CreateEmptyStream()
    {
        CreateStream();
        // Made here, not in the measured method: their garbage would pause the run it measures.
        _latencyBodies = BenchCommands.Make(LatencyCount, "noop", "{}")
            .Select((c, i) => System.Text.Encoding.UTF8.GetBytes((c with { ExecutionId = i }).ToJson())) // the sink finds the publish time by execution id
            .ToArray();
        GC.Collect();
    }

    private NatsJSContext CreateStream()
    {
        _stream = $"bench_{_round++}";
        var js = new NatsJSContext(_connection);
        js.CreateStreamAsync(new StreamConfig(_stream, [$"{_stream}.>"])).AsTask().GetAwaiter().GetResult();
        return js;
    }

    [IterationCleanup]
    public void DeleteStream()
    {
        // The source is disposed here, outside the measured time: its stop drains the pull request
        // in progress (up to 50 ms of quiet), a once-per-run cost the raw loop, which leaves its
        // request behind on the server, does not pay.
        _openRun?.GetAwaiter().GetResult();
        _openRun = null;
        _openSource?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _openSource = null;
        new NatsJSContext(_connection).DeleteStreamAsync(_stream).AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Pipeline NATS source (noop, ack, events counted)")]
    public Task Pipeline() => RunPipeline(4, keepAlive: true);

    internal Task PipelineNoKeepAlive() => RunPipeline(4, keepAlive: false);

    internal Task PipelineOnePull() => RunPipeline(1, keepAlive: true);

    private async Task RunPipeline(int pulls, bool keepAlive)
    {
        var pipelineOptions = new PipelineOptions { MaxInFlight = 2048, PullParallelism = Knob("PULLS", pulls), Dispatch = new BlockOptions { Parallelism = Knob("DISPATCH", 16) } };
        var options = new NatsSourceOptions { Stream = _stream, Consumer = ConsumerName, FetchBatch = Knob("FETCH", 1000), MaxAckPending = 8192 };
        options.ValidateFor(pipelineOptions);
        var source = _openSource = new NatsCommandSource(_connection, options);
        var sink = new StoppingSink(3L * Count);
        var pipeline = new CommandPipeline<NatsHandle>(keepAlive ? source : source.WithoutKeepAlive(), _tools, sink, pipelineOptions);
        sink.Stop = pipeline.RequestStop;
        var run = pipeline.RunAsync(CancellationToken.None);
        // Measured until every event was written, as the raw loop is until every ack: the stop that
        // follows (it reads the last pull request to its end on the server, up to FetchExpires, before
        // it gives anything back) is a once-per-run cost, awaited in the iteration cleanup.
        await Task.WhenAny(sink.AllWritten, run);
        _openRun = FinishAsync(run, pipeline, source);
    }

    private async Task FinishAsync(Task run, CommandPipeline<NatsHandle> pipeline, NatsCommandSource source)
    {
        await run;
        Check(pipeline.Stats.Completed == Count && source.Acked == Count, $"completed {pipeline.Stats.Completed}, acked {source.Acked}, pulled {pipeline.Stats.Pulled}, fetched {source.Fetched}, skipped {pipeline.Stats.Skipped}, failed {pipeline.Stats.Failed}, settle errors {pipeline.Stats.SettleErrors}, nacked {source.Nacked}, engine acked {pipeline.Stats.Acked}, dup settles {pipeline.Stats.DuplicateSettles}");
    }

    [Benchmark(OperationsPerInvoke = LatencyCount, Description = "Pipeline at a fixed rate: publish → command.completed")]
    public async Task PipelineLatency()
    {
        var pipelineOptions = new PipelineOptions { MaxInFlight = 2048, PullParallelism = Knob("PULLS", 4), Dispatch = new BlockOptions { Parallelism = Knob("DISPATCH", 16) } };
        var options = new NatsSourceOptions { Stream = _stream, Consumer = ConsumerName, FetchBatch = Knob("FETCH", 1000), MaxAckPending = 8192 };
        await using var source = new NatsCommandSource(_connection, options);
        await source.InitializeAsync(CancellationToken.None);
        var sent = new long[LatencyCount];
        var sink = new LatencySink(sent);
        var pipeline = new CommandPipeline<NatsHandle>(source, _tools, sink, pipelineOptions);
        sink.Pipeline = pipeline;
        var run = pipeline.RunAsync(CancellationToken.None);
        await Task.Delay(200); // the first pull request is waiting on the server
        var subject = $"{_stream}.c";
        await Task.Factory.StartNew(() => PublishAtRate(subject, _latencyBodies, sent), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await run;
        Check(pipeline.Stats.Completed == LatencyCount && sink.Recorded == LatencyCount);
        LatencyResults.Add(nameof(PipelineLatency), sink.Latencies);
    }

    /// <summary>Publishes each millisecond the messages due by then (core publish: the stream captures it; no ack awaited), stamping each one's send time.</summary>
    private void PublishAtRate(string subject, byte[][] bodies, long[] sent)
    {
        var start = Stopwatch.GetTimestamp();
        var next = 0;
        while (next < bodies.Length)
        {
            var due = (int)Math.Min(bodies.Length, (Stopwatch.GetTimestamp() - start) * LatencyRate / Stopwatch.Frequency + 1);
            for (; next < due; next++)
            {
                Volatile.Write(ref sent[next], Stopwatch.GetTimestamp());
                var publish = _publisher.PublishAsync(subject, bodies[next]);
                if (!publish.IsCompletedSuccessfully)
                {
                    publish.AsTask().GetAwaiter().GetResult();
                }
            }

            Thread.Sleep(1);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Count, Description = "Baseline: raw ConsumeAsync + AckAsync")]
    public async Task RawConsume()
    {
        var js = new NatsJSContext(_connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig("raw") { MaxAckPending = 8192 });
        var seen = 0;
        await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 1000 }))
        {
            await msg.AckAsync();
            if (++seen == Count)
            {
                break;
            }
        }
    }

    /// <summary>The source alone: one loop of NextAsync + AckAsync, no engine (for tuning).</summary>
    internal async Task RawFetch()
    {
        var js = new NatsJSContext(_connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig("rawfetch") { MaxAckPending = 8192 });
        var seen = 0;
        while (seen < Count)
        {
            await foreach (var msg in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 1000, Expires = TimeSpan.FromSeconds(5) }))
            {
                _ = msg.Metadata;
                await msg.AckAsync();
                seen++;
            }
        }
    }

    internal async Task RawMeta()
    {
        var js = new NatsJSContext(_connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig("rawmeta") { MaxAckPending = 8192 });
        var seen = 0;
        await foreach (var msg in consumer.ConsumeAsync<byte[]>(opts: new NatsJSConsumeOpts { MaxMsgs = 1000 }))
        {
            _ = msg.Metadata;
            await msg.AckAsync();
            if (++seen == Count)
            {
                break;
            }
        }
    }

    internal Task SourceLoop() => SourceLoop(null);

    internal Task SourceLoopNoDecode() => SourceLoop(new FixedDecoder());

    private sealed class FixedDecoder : global::Pipeline.Nats.Messages.INatsMessageDecoder
    {
        private readonly global::Pipeline.Commands.ClaimOutcome _outcome = global::Pipeline.Commands.ClaimOutcome.Claimed(BenchCommands.Make(1, "noop", "{}")[0]);

        public global::Pipeline.Commands.ClaimOutcome Decode(in global::Pipeline.Nats.Messages.NatsDeliveredMessage message) => _outcome;
    }

    private async Task SourceLoop(global::Pipeline.Nats.Messages.INatsMessageDecoder? decoder)
    {
        var options = new NatsSourceOptions { Stream = _stream, Consumer = ConsumerName, FetchBatch = 1000, MaxAckPending = 8192 };
        await using var source = new NatsCommandSource(_connection, options, decoder);
        for (var i = 0; i < Count; i++)
        {
            var pulled = (await source.NextAsync(CancellationToken.None))!.Value;
            await source.AckAsync(pulled.Handle, CancellationToken.None);
        }
    }

    /// <summary>A tuning override for the quick mode (<c>PIPELINE_BENCH_PULLS</c>, <c>_DISPATCH</c>, <c>_FETCH</c>); the recorded runs use the defaults.</summary>
    private static int Knob(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable($"PIPELINE_BENCH_{name}"), out var value) && value > 0 ? value : fallback;

    private static void Check(bool ok, string? what = null)
    {
        if (!ok)
        {
            throw new InvalidOperationException($"The run did not do what it should. {what}");
        }
    }

    /// <summary>Records, for each command.completed, the time since its publish; stops the pipeline once every command completed.</summary>
    private sealed class LatencySink(long[] sent) : IEventSink
    {
        private readonly long[] _latencies = new long[sent.Length];
        private int _recorded;

        public CommandPipeline<NatsHandle>? Pipeline { get; set; }

        public int Recorded => Volatile.Read(ref _recorded);

        /// <summary>Publish → completion times, in <see cref="Stopwatch"/> ticks.</summary>
        public long[] Latencies => _latencies;

        public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            var now = Stopwatch.GetTimestamp();
            var done = 0;
            foreach (var e in batch.Span)
            {
                if (string.Equals(e.EventType, EventTypes.CommandCompleted, StringComparison.Ordinal))
                {
                    _latencies[e.ExecutionId] = now - Volatile.Read(ref sent[e.ExecutionId]);
                    done++;
                }
            }

            if (Interlocked.Add(ref _recorded, done) >= sent.Length)
            {
                Pipeline?.RequestStop();
            }

            return ValueTask.CompletedTask;
        }
    }
}
