using System.Diagnostics.Metrics;
using Pipeline.Telemetry;

namespace Pipeline.Tests.Engine;

/// <summary>Spans parented to the trace context an item carries, messaging attributes, per-block gauges, and counts per command.</summary>
public sealed class TelemetryTests : IDisposable
{
    // Tests run in parallel and every pipeline reports to the one "Pipeline" source: each test
    // picks its own spans by command id prefix, and its own measurements by worker id.
    private readonly string _prefix = $"t{Guid.NewGuid():N}-";
    private readonly ConcurrentQueue<Activity> _stopped = new();
    private readonly ActivityListener _listener;

    public TelemetryTests()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == PipelineTelemetry.Name,
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public void Dispose() => _listener.Dispose();

    private List<Activity> Spans(string name) =>
        [.. _stopped.Where(a => a.OperationName == name && (a.GetTagItem("pipeline.command_id") as string ?? Parent(a)?.GetTagItem("pipeline.command_id") as string)?.StartsWith(_prefix, StringComparison.Ordinal) == true)];

    private Activity? Parent(Activity child) => _stopped.FirstOrDefault(a => a.SpanId == child.ParentSpanId);

    [Fact]
    public async Task The_items_trace_context_parents_its_process_span_and_the_dispatch_span_is_its_child()
    {
        var traced = ActivityContext.Parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "vendor=1");
        var source = new TracedSource([TestCommands.Make(_prefix + "traced"), TestCommands.Make(_prefix + "plain")]);
        source.Parents[_prefix + "traced"] = traced;
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions());

        // An ambient span around the run must not become any command's parent.
        using (var ambient = new ActivitySource(PipelineTelemetry.Name).StartActivity("ambient"))
        {
            await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        }

        var process = Spans("process orders");
        Assert.Equal(2, process.Count);
        var child = process.Single(a => (string?)a.GetTagItem("pipeline.command_id") == _prefix + "traced");
        Assert.Equal(traced.TraceId, child.TraceId);
        Assert.Equal(traced.SpanId, child.ParentSpanId);
        Assert.Equal("vendor=1", child.TraceStateString);
        Assert.Equal(ActivityKind.Consumer, child.Kind);
        Assert.Equal("process", child.GetTagItem("messaging.operation.type"));
        Assert.Equal("memory", child.GetTagItem("messaging.system"));
        Assert.Equal("orders", child.GetTagItem("messaging.destination.name"));
        Assert.Equal("pool", child.GetTagItem("messaging.consumer.group.name"));
        Assert.StartsWith("m-", (string?)child.GetTagItem("messaging.message.id"), StringComparison.Ordinal);
        Assert.Equal("ack", child.GetTagItem("pipeline.settle"));
        Assert.Equal("command.completed", child.GetTagItem("pipeline.outcome"));

        var root = process.Single(a => (string?)a.GetTagItem("pipeline.command_id") == _prefix + "plain");
        Assert.Equal(default, root.ParentSpanId); // a new trace, not the ambient span's
        Assert.NotEqual(traced.TraceId, root.TraceId);

        var dispatch = Spans(PipelineTelemetry.DispatchSpanName);
        Assert.Equal(2, dispatch.Count);
        var tracedDispatch = dispatch.Single(a => a.ParentSpanId == child.SpanId);
        Assert.Equal(traced.TraceId, tracedDispatch.TraceId);
        Assert.Equal(ActivityKind.Internal, tracedDispatch.Kind);
    }

    [Fact]
    public async Task A_source_that_does_not_describe_itself_gets_plain_process_spans_and_a_failure_is_an_error()
    {
        var source = InMemoryCommandSource.From([TestCommands.Make(_prefix + "bad", "teleport")]);
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(), new CollectingSink(), PipelineHarness.FastOptions());

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var span = Assert.Single(Spans("process"));
        Assert.Null(span.GetTagItem("messaging.system"));
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal("command.failed", span.GetTagItem("pipeline.outcome"));
    }

    [Fact]
    public async Task A_command_that_fails_once_and_succeeds_on_redelivery_is_a_retry_not_a_failure()
    {
        var calls = new ConcurrentDictionary<string, int>();
        var flaky = new ScriptedTool("flaky", (c, _) => new(calls.AddOrUpdate(c.CommandId, 1, static (_, n) => n + 1) == 1
            ? ToolResult.Failure("first run fails", transient: true)
            : ToolResult.Success()));
        var source = InMemoryCommandSource.From([TestCommands.Make("once", "flaky"), TestCommands.Make("fine")]);
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(flaky), new CollectingSink(), PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with { ToolRetries = 0 });

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var stats = pipeline.Stats;
        Assert.Equal(2, stats.Completed);
        Assert.Equal(0, stats.Failed);
        Assert.Equal(1, stats.Retried);
        Assert.Equal(3, stats.Pulled);
    }

    [Theory]
    [InlineData(AckMode.AckAfterDispatch, 1, 2)] // redelivered twice, then given up on at the third attempt
    [InlineData(AckMode.AckBeforeDispatch, 1, 0)] // acked before it ran: the one failure is final
    public async Task A_command_that_always_fails_is_one_failure_however_often_it_was_redelivered(AckMode mode, long failed, long retried)
    {
        var source = InMemoryCommandSource.From([TestCommands.Make("doomed", "fail")]);
        var fail = new ScriptedTool("fail", (_, _) => new(ToolResult.Failure("always", transient: true)));
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(fail), new CollectingSink(), PipelineHarness.FastOptions(mode) with { ToolRetries = 0, MaxAttempts = 3 });

        await pipeline.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, pipeline.Stats.Completed);
        Assert.Equal(failed, pipeline.Stats.Failed);
        Assert.Equal(retried, pipeline.Stats.Retried);
    }

    [Fact]
    public async Task Queue_depth_running_and_in_flight_are_gauges_per_block()
    {
        const int count = 10;
        var worker = _prefix + "gauges";
        var gate = new GatedTool("gated");
        var source = new InMemoryCommandSource();
        for (var i = 0; i < count; i++)
        {
            source.Enqueue(TestCommands.Make($"g-{i}", "gated"));
        }

        // After dispatch: the held items stay unsettled, so in flight.
        var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(gate), new CollectingSink(), PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
        {
            WorkerId = worker,
            MaxInFlight = 64,
            Dispatch = new BlockOptions { Parallelism = 4 },
        });
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitFor(() => gate.Started == 4 && pipeline.Stats.Blocks.Dispatch.Queued == count - 4, TimeSpan.FromSeconds(10), "four running, the rest queued at dispatch");

            var seen = Collect(worker);
            Assert.Equal(count, seen[("pipeline.in_flight", "")]);
            Assert.Equal(4, seen[("pipeline.block.running", "dispatch")]);
            Assert.Equal(count - 4, seen[("pipeline.block.queue.depth", "dispatch")]);
            Assert.Equal(0, seen[("pipeline.block.queue.depth", "claim")]);
            Assert.Equal(0, seen[("pipeline.block.queue.depth", "ack")]);
            Assert.Equal(0, seen[("pipeline.block.queue.depth", "emit")]);
            Assert.True(seen.ContainsKey(("pipeline.block.running", "pull")));
            Assert.False(seen.ContainsKey(("pipeline.block.queue.depth", "pull")));
            Assert.Equal(count, seen[("messaging.client.consumed.messages", "")]);
        }
        finally
        {
            gate.Release();
            source.Complete();
            await run.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.False(Collect(worker).ContainsKey(("pipeline.in_flight", "")), "a finished run is no longer reported");
    }

    /// <summary>One collection of the Pipeline meter's observable instruments, this worker's measurements only.</summary>
    private static Dictionary<(string Instrument, string Block), long> Collect(string worker)
    {
        var seen = new Dictionary<(string, string), long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == PipelineTelemetry.Name)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? id = null;
            var block = "";
            foreach (var tag in tags)
            {
                if (tag.Key == "pipeline.worker_id")
                {
                    id = tag.Value as string;
                }
                else if (tag.Key == "pipeline.block")
                {
                    block = (string)tag.Value!;
                }
            }

            if (id == worker)
            {
                lock (seen)
                {
                    seen[(instrument.Name, block)] = value;
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return seen;
    }

    /// <summary>An in-memory source whose items carry a trace context, and that describes itself.</summary>
    private sealed class TracedSource(IEnumerable<Command> commands) : ICommandSource<DeliveryHandle>, ISupportsTelemetry<DeliveryHandle>
    {
        private readonly InMemoryCommandSource _inner = InMemoryCommandSource.From(commands);

        public ConcurrentDictionary<string, ActivityContext> Parents { get; } = new();

        public string MessagingSystem => "memory";

        public string? DestinationName => "orders";

        public string? ConsumerGroupName => "pool";

        public string? MessageIdOf(DeliveryHandle handle) => "m-" + handle.DeliveryId.ToString(System.Globalization.CultureInfo.InvariantCulture);

        public async ValueTask<Pulled<DeliveryHandle>?> NextAsync(CancellationToken cancellationToken)
        {
            var pulled = await _inner.NextAsync(cancellationToken);
            return pulled is { } item && Parents.TryGetValue(item.Outcome.Command!.CommandId, out var parent) ? item with { Parent = parent } : pulled;
        }

        public ValueTask AckAsync(DeliveryHandle handle, CancellationToken cancellationToken) => _inner.AckAsync(handle, cancellationToken);

        public ValueTask NackAsync(DeliveryHandle handle, CancellationToken cancellationToken) => _inner.NackAsync(handle, cancellationToken);
    }
}
