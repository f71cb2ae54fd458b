namespace Pipeline.Nats.Tests.Sources;

/// <summary>The existing engine, end to end, on the JetStream source against a real nats-server.</summary>
[Collection(NatsCollection.Name)]
public sealed class NatsSourceEndToEndTests(NatsServerFixture server) : StreamTest(server, "e2e")
{
    private NatsConnection _consumerConnection = null!;

    private string Subject => $"{Stream}.commands";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _consumerConnection = Server.Connect("consumer");
    }

    public override async Task DisposeAsync()
    {
        await _consumerConnection.DisposeAsync();
        await base.DisposeAsync();
    }

    private NatsSourceOptions Options(TimeSpan? ackWait = null) => new()
    {
        Stream = Stream,
        Subjects = [$"{Stream}.>"],
        Consumer = "workers",
        AckWait = ackWait ?? TimeSpan.FromSeconds(30),
        FetchExpires = TimeSpan.FromSeconds(1),
    };

    /// <summary>docs/nats.md advises a work-queue stream for a queue that shrinks as work is done: the worker binds to one as it is, and every acked command leaves it.</summary>
    [Fact]
    public async Task On_a_work_queue_stream_every_command_completes_and_the_stream_ends_empty()
    {
        const int count = 300;
        var stream = NatsServerFixture.UniqueName("wq");
        var js = new NATS.Client.JetStream.NatsJSContext(Connection);
        await js.CreateStreamAsync(new NATS.Client.JetStream.Models.StreamConfig(stream, [$"{stream}.>"])
        {
            Retention = NATS.Client.JetStream.Models.StreamConfigRetention.Workqueue,
        });
        await JetStream.PublishAsync(Connection, $"{stream}.c", Enumerable.Range(0, count).Select(i => TestCommands.Make($"wq-{i}")));
        var options = Options() with { Stream = stream, Subjects = [$"{stream}.>"] };
        await using var source = new NatsCommandSource(_consumerConnection, options);
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, new PipelineOptions { MaxInFlight = 64, AckMode = AckMode.AckAfterDispatch });

        await PipelineRuns.RunUntilAsync(pipeline, () => sink.CompletedIds == count, TimeSpan.FromSeconds(60), "all completed", () => $"{sink.CompletedIds} completed");

        Assert.All(sink.CompletedById, pair => Assert.Equal(1, pair.Value));
        await Eventually.WaitForAsync(
            async () => (await js.GetStreamAsync(stream)).Info.State.Messages == 0,
            TimeSpan.FromSeconds(10),
            "the stream emptied by the acks");
    }

    [Fact]
    public async Task Every_published_command_completes_exactly_once_and_is_acked()
    {
        const int count = 2000;
        var ids = Enumerable.Range(0, count).Select(i => $"cmd-{i}").ToArray();
        await JetStream.PublishAsync(Connection, Subject, ids.Select(id => TestCommands.Make(id)));
        var options = Options();
        var pipelineOptions = new PipelineOptions { MaxInFlight = 256, PullParallelism = 4 };
        options.ValidateFor(pipelineOptions);
        await using var source = new NatsCommandSource(_consumerConnection, options);
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, pipelineOptions);

        await PipelineRuns.RunUntilAsync(pipeline, () => sink.CompletedIds == count, TimeSpan.FromSeconds(60), "all completed", () => $"{sink.CompletedIds} completed");

        Assert.Equal(ids.Order(StringComparer.Ordinal), sink.CompletedById.Keys.Order(StringComparer.Ordinal));
        Assert.All(sink.CompletedById, pair => Assert.Equal(1, pair.Value));
        Assert.Equal(count, source.Acked);
        Assert.Equal(0, pipeline.Stats.InFlight);
        // The server's own view: nothing pending, nothing waiting for an ack.
        await Eventually.WaitForAsync(
            async () => (await JetStream.ConsumerInfoAsync(Connection, Stream, "workers")) is { NumAckPending: 0, NumPending: 0 },
            TimeSpan.FromSeconds(5),
            "the consumer has nothing pending");
    }

    [Fact]
    public async Task Concurrent_NextAsync_calls_each_get_their_own_message()
    {
        const int count = 400;
        var sequences = await JetStream.PublishAsync(Connection, Subject, Enumerable.Range(0, count).Select(i => TestCommands.Make($"c-{i}")));
        await using var source = new NatsCommandSource(_consumerConnection, Options() with { FetchBatch = 16 });
        var pulled = new System.Collections.Concurrent.ConcurrentBag<(ulong Sequence, string Id)>();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var left = count;

        var callers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Decrement(ref left) >= 0)
            {
                var item = await source.NextAsync(bound.Token);
                pulled.Add((item!.Value.Handle.StreamSequence, item.Value.Outcome.Command!.CommandId));
                await source.AckAsync(item.Value.Handle, CancellationToken.None);
            }
        })).ToArray();
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(count, pulled.Count);
        Assert.Equal(sequences.Order(), pulled.Select(p => p.Sequence).Order());
        Assert.Equal(count, pulled.Select(p => p.Id).Distinct().Count());
    }

    /// <summary>
    /// What the source tells a claimer of each delivery (<see cref="NatsDelivery"/>) is that
    /// delivery as the server sent it: the subject and stream sequence it was published with, and
    /// for a redelivery the same stream sequence with the next delivery count and consumer
    /// sequence. The KV claimer tells its own redelivery from a second publish by it. The source
    /// without keep-alive describes its deliveries too.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Each_delivery_is_described_as_the_server_sent_it_and_a_redelivery_keeps_its_stream_sequence(bool keepAlive)
    {
        var js = new NATS.Client.JetStream.NatsJSContext(Connection);
        var headers = new NatsHeaders { ["X-Origin"] = "test" };
        var ack = await js.PublishAsync(Subject, Encoding.UTF8.GetBytes(TestCommands.Make("described").ToJson()), headers: headers);
        ack.EnsureSuccess();
        await using var source = new NatsCommandSource(_consumerConnection, Options());
        var described = (Pipeline.Sources.ISupportsDeliveryInfo<NatsHandle>)(keepAlive ? source : source.WithoutKeepAlive());
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var first = (await source.NextAsync(bound.Token))!.Value;
        var firstDelivery = Assert.IsType<NatsDelivery>(described.DeliveryOf(first.Handle));
        await source.NackAsync(first.Handle, CancellationToken.None);
        var again = (await source.NextAsync(bound.Token))!.Value;
        var againDelivery = Assert.IsType<NatsDelivery>(described.DeliveryOf(again.Handle));
        await source.AckAsync(again.Handle, CancellationToken.None);

        Assert.Equal(new NatsDelivery(Subject, ack.Seq, 1, 1, firstDelivery.Headers), firstDelivery);
        Assert.Equal("test", firstDelivery.Headers?["X-Origin"].ToString());
        Assert.Equal(new NatsDelivery(Subject, ack.Seq, 2, 2, againDelivery.Headers), againDelivery);
        Assert.Equal("test", againDelivery.Headers?["X-Origin"].ToString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_tool_running_three_ack_waits_is_delivered_once_with_keep_alive_and_again_without(bool keepAlive)
    {
        // Renewing every 250 ms against a 3 s ack wait leaves 2.75 s for a late timer: with 1 s, a
        // loaded 2-core machine (three test hosts, their child processes and the server) stalled
        // the renewals past the ack wait now and then, and the server rightly redelivered.
        var ackWait = TimeSpan.FromSeconds(3);
        await JetStream.PublishAsync(Connection, Subject, [TestCommands.Make("long", toolKind: "slow")]);
        await using var source = new NatsCommandSource(_consumerConnection, Options(ackWait) with { KeepAliveInterval = TimeSpan.FromMilliseconds(250) });
        var slow = new SlowTool(3 * ackWait);
        var sink = new CollectingSink();
        var clock = new RenewalClock(source);
        var pipeline = new CommandPipeline<NatsHandle>(
            keepAlive ? clock : source.WithoutKeepAlive(),
            ToolRegistry.CreateBuiltIn(extra: [slow]),
            sink,
            new PipelineOptions { AckMode = AckMode.AckAfterDispatch });

        await PipelineRuns.RunUntilAsync(pipeline, () => sink.CompletedIds == 1, TimeSpan.FromSeconds(30), "completed");

        if (keepAlive)
        {
            Assert.True(source.Fetched == 1, $"fetched {source.Fetched}, renewals {source.Renewals}, pipeline renewals {pipeline.Stats.Renewals}, renewal errors {pipeline.Stats.RenewalErrors}, longest stretch without one {clock.LongestGap.TotalSeconds:0.###} s"); // delivered once
            Assert.True(source.Renewals >= 9, $"renewed {source.Renewals} times over 9 s at 250 ms");
        }
        else
        {
            Assert.True(source.Fetched >= 2, $"fetched {source.Fetched} times: without keep-alive the server must redeliver after the ack wait");
        }

        Assert.Equal(1, slow.Runs["long"]); // the engine holds a redelivery of a running command, never runs it twice
    }

    [Fact]
    public async Task An_always_failing_command_is_terminated_after_max_attempts_with_one_failed_event()
    {
        await JetStream.PublishAsync(Connection, Subject, [TestCommands.Make("poison", toolKind: "fail")]);
        var options = Options(TimeSpan.FromSeconds(1)) with { MaxDeliver = 5 };
        await using var source = new NatsCommandSource(_consumerConnection, options);
        var failing = new FailingTool();
        var sink = new CollectingSink();
        var pipelineOptions = new PipelineOptions
        {
            AckMode = AckMode.AckAfterDispatch,
            MaxAttempts = 3,
            ToolRetries = 0,
            NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(50), Max = TimeSpan.FromMilliseconds(100) },
        };
        options.ValidateFor(pipelineOptions);
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(extra: [failing]), sink, pipelineOptions);

        await PipelineRuns.RunUntilAsync(pipeline, () => source.Terminated == 1, TimeSpan.FromSeconds(20), "terminated", () => $"fetched {source.Fetched}, nacked {source.Nacked}");
        // Past the ack wait twice: a terminated message must not come back.
        await Task.Delay(TimeSpan.FromSeconds(2.5));

        Assert.Equal(3, source.Fetched);
        Assert.Equal(2, source.Nacked);
        Assert.Equal(1, source.Terminated);
        // One command.failed per attempt; exactly one gives up, on the last.
        var failures = sink.OfType(EventTypes.CommandFailed).ToList();
        Assert.Equal([0, 1, 2], failures.Select(e => e.Attempts));
        var givingUp = Assert.Single(failures, e => e.Error!.Contains("giving up", StringComparison.Ordinal));
        Assert.Equal(2, givingUp.Attempts);
        var info = await JetStream.ConsumerInfoAsync(Connection, Stream, "workers");
        Assert.Equal(0, info.NumAckPending);
        Assert.Equal(0ul, info.NumPending);
    }

    [Fact]
    public async Task A_malformed_body_is_a_claim_failed_naming_its_stream_sequence_and_is_terminated_not_redelivered()
    {
        var sequences = await JetStream.PublishAsync(Connection, Subject, [Encoding.UTF8.GetBytes("{not json"), Encoding.UTF8.GetBytes(TestCommands.Make("fine").ToJson())]);
        await using var source = new NatsCommandSource(_consumerConnection, Options(TimeSpan.FromSeconds(1)));
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, new PipelineOptions { AckMode = AckMode.AckAfterDispatch });

        await PipelineRuns.RunUntilAsync(pipeline, () => source.Terminated == 1 && sink.CompletedIds == 1, TimeSpan.FromSeconds(20), "malformed terminated, fine completed");
        await Task.Delay(TimeSpan.FromSeconds(2.5)); // twice the ack wait

        var failed = Assert.Single(sink.OfType(EventTypes.ClaimFailed));
        Assert.Contains($"stream sequence {sequences[0]}", failed.Error, StringComparison.Ordinal);
        Assert.Equal(2, source.Fetched);
        Assert.Equal(1, pipeline.Stats.Terminated);
        var info = await JetStream.ConsumerInfoAsync(Connection, Stream, "workers");
        Assert.Equal(0, info.NumAckPending);
    }

    /// <summary>A decoder must not throw; one that does still leaves every message a settled handle: a claim failure, terminated.</summary>
    [Fact]
    public async Task A_decoder_that_throws_is_a_claim_failed_and_the_message_is_terminated()
    {
        var sequences = await JetStream.PublishAsync(Connection, Subject, [Encoding.UTF8.GetBytes(TestCommands.Make("thrown").ToJson())]);
        await using var source = new NatsCommandSource(_consumerConnection, Options(TimeSpan.FromSeconds(1)), new ThrowingDecoder());
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, new PipelineOptions { AckMode = AckMode.AckAfterDispatch });

        await PipelineRuns.RunUntilAsync(pipeline, () => source.Terminated == 1, TimeSpan.FromSeconds(20), "terminated");
        await Task.Delay(TimeSpan.FromSeconds(2.5)); // twice the ack wait

        var failed = Assert.Single(sink.OfType(EventTypes.ClaimFailed));
        Assert.Contains($"stream sequence {sequences[0]}", failed.Error, StringComparison.Ordinal);
        Assert.Contains("decoder exploded", failed.Error, StringComparison.Ordinal);
        Assert.Equal(1, source.Fetched);
        var info = await JetStream.ConsumerInfoAsync(Connection, Stream, "workers");
        Assert.Equal(0, info.NumAckPending);
    }

    private sealed class ThrowingDecoder : Pipeline.Nats.Messages.INatsMessageDecoder
    {
        public Pipeline.Commands.ClaimOutcome Decode(in Pipeline.Nats.Messages.NatsDeliveredMessage message) => throw new InvalidOperationException("decoder exploded");
    }
}
