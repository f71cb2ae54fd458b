using OpenTelemetry;
using OpenTelemetry.Trace;
using Pipeline.Nats.Messages;
using Pipeline.Telemetry;

namespace Pipeline.Nats.Tests.Messages;

/// <summary>The W3C trace context a producer put in the message headers parents the command's spans (OpenTelemetry SDK, in-memory exporter).</summary>
[Collection(NatsCollection.Name)]
public sealed class TraceContextTests(NatsServerFixture server) : StreamTest(server, "trace")
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private const string ParentSpanId = "00f067aa0ba902b7";

    [Fact]
    public async Task A_traceparent_header_parents_the_commands_spans_and_none_or_garbage_starts_a_new_trace()
    {
        var spans = new List<Activity>();
        using (var tracing = Sdk.CreateTracerProviderBuilder().AddSource(PipelineTelemetry.Name).AddInMemoryExporter(spans).Build())
        {
            var js = new NatsJSContext(Connection);
            await Publish(js, "traced", new NatsHeaders { ["traceparent"] = $"00-{TraceId}-{ParentSpanId}-01", ["tracestate"] = "congo=t61rcWkgMzE" });
            await Publish(js, "plain", null);
            await Publish(js, "garbage", new NatsHeaders { ["traceparent"] = "00-not-a-trace-parent-at-all-zz" });
            await Publish(js, "zeros", new NatsHeaders { ["traceparent"] = "00-00000000000000000000000000000000-0000000000000000-01" });

            await using var consumer = Server.Connect("consumer");
            await using var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "tracers", FetchExpires = TimeSpan.FromSeconds(1) });
            var sink = new CollectingSink();
            var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, new PipelineOptions { AckMode = AckMode.AckAfterDispatch });
            await PipelineRuns.RunUntilAsync(pipeline, () => sink.CompletedIds == 4, TimeSpan.FromSeconds(30), "all four completed", () => $"{sink.CompletedIds} completed");
            tracing.ForceFlush();
        }

        var process = spans.Where(s => s.OperationName == $"process {Stream}").ToDictionary(s => (string)s.GetTagItem("pipeline.command_id")!);
        Assert.Equal(["garbage", "plain", "traced", "zeros"], process.Keys.Order(StringComparer.Ordinal));

        var traced = process["traced"];
        Assert.Equal(TraceId, traced.TraceId.ToHexString());
        Assert.Equal(ParentSpanId, traced.ParentSpanId.ToHexString());
        Assert.Equal("congo=t61rcWkgMzE", traced.TraceStateString);
        Assert.Equal(ActivityKind.Consumer, traced.Kind);
        Assert.Equal("nats", traced.GetTagItem("messaging.system"));
        Assert.Equal(Stream, traced.GetTagItem("messaging.destination.name"));
        Assert.Equal("tracers", traced.GetTagItem("messaging.consumer.group.name"));
        Assert.Equal("1", traced.GetTagItem("messaging.message.id")); // the stream sequence
        Assert.Equal("process", traced.GetTagItem("messaging.operation.type"));
        var dispatch = Assert.Single(spans, s => s.OperationName == PipelineTelemetry.DispatchSpanName && s.ParentSpanId == traced.SpanId);
        Assert.Equal(TraceId, dispatch.TraceId.ToHexString());

        foreach (var id in new[] { "plain", "garbage", "zeros" })
        {
            Assert.Equal(default, process[id].ParentSpanId); // a root: the command still ran, in a trace of its own
            Assert.NotEqual(TraceId, process[id].TraceId.ToHexString());
        }
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false)]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true)]
    [InlineData("zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false)]
    [InlineData("\u00ff\u0000garbage", false)]
    public void Headers_are_read_without_throwing(string? traceparent, bool parsed)
    {
        var headers = traceparent is null ? new NatsHeaders { ["other"] = "x" } : new NatsHeaders { ["traceparent"] = traceparent };

        var context = NatsTraceContext.FromHeaders(headers);

        Assert.Equal(parsed, context != default);
        if (parsed)
        {
            Assert.True(context.IsRemote);
            Assert.Equal(TraceId, context.TraceId.ToHexString());
        }
    }

    private async Task Publish(NatsJSContext js, string id, NatsHeaders? headers)
    {
        var ack = await js.PublishAsync($"{Stream}.c", Encoding.UTF8.GetBytes(TestCommands.Make(id).ToJson()), headers: headers);
        ack.EnsureSuccess();
    }
}
