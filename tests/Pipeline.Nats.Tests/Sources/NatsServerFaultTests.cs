namespace Pipeline.Nats.Tests.Sources;

/// <summary>The server dies under a running pipeline: the run goes on, nothing is lost, nothing stays stuck.</summary>
[Collection(NatsCollection.Name)]
public sealed class NatsServerFaultTests(NatsServerFixture server, ITestOutputHelper output) : StreamTest(server, "fault")
{
    [Theory]
    [InlineData(true, 20_000)]
    [InlineData(false, 4000)]
    public async Task Killed_and_restarted_mid_run_the_run_finishes_with_every_command_completed_and_none_pending(bool kill, int count)
    {
        var seed = Seeds.Next(output);
        var random = new Random(seed);
        var ids = Enumerable.Range(0, count).Select(i => $"k-{i}").ToArray();
        // How much runs freely before the fault (an eighth to a half), and each held command's
        // tool time (0-3 ms), from the seed: a failure names its seed, and the seed replays it.
        var free = count / 8 + random.Next(count * 3 / 8);
        var toolMs = ids.Select(_ => random.Next(4)).ToArray();
        output.WriteLine($"{count} commands, {free} run before the fault");
        await using (var publisher = Server.Connect("publisher"))
        {
            // The first part runs freely; the rest is held until the server is down, so the
            // fault always lands mid-run (unheld, the whole run can finish before a SIGTERM'd
            // server has exited) with deliveries in flight and messages still on the server.
            await JetStream.PublishAsync(publisher, $"{Stream}.c", ids.Select((id, i) => i < free
                ? TestCommands.Make(id, toolKind: "delay", inputJson: $$"""{"ms": {{toolMs[i]}}}""")
                : TestCommands.Make(id, toolKind: "gated", inputJson: $$"""{"ms": {{toolMs[i]}}}""")));
        }

        var gated = new GatedTool();

        await using var consumer = Server.Connect("consumer");
        await using var source = new NatsCommandSource(consumer, new NatsSourceOptions
        {
            Stream = Stream,
            Consumer = "workers",
            AckWait = TimeSpan.FromSeconds(3),
            FetchExpires = TimeSpan.FromSeconds(1),
            SettleTimeout = TimeSpan.FromSeconds(1),
        });
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(extra: [gated]), sink, new PipelineOptions
        {
            MaxInFlight = 1024,
            Dispatch = new BlockOptions { Parallelism = 256 },
            PullParallelism = 4,
            SettleTimeout = TimeSpan.FromSeconds(2),
        });
        var run = pipeline.RunAsync(CancellationToken.None);

        await Eventually.WaitForAsync(() => Task.FromResult(sink.CompletedIds >= free), TimeSpan.FromSeconds(30), $"the free part done before the fault (seed {seed})");
        if (kill)
        {
            await Server.KillAsync();
        }
        else
        {
            await Server.StopAsync();
        }

        var doneAtFault = sink.CompletedIds;
        gated.Release(); // the held work finishes while the server is down: its acks wait for the reconnect, or time out and come back
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await Server.StartAsync();

        await using var observer = Server.Connect("observer");
        await Eventually.WaitForAsync(
            async () => sink.CompletedIds == count && (await JetStream.ConsumerInfoAsync(observer, Stream, "workers")) is { NumAckPending: 0, NumPending: 0 },
            TimeSpan.FromSeconds(60),
            $"every command completed and nothing pending on the server (seed {seed})",
            () => $"{sink.CompletedIds} of {count} completed ({doneAtFault} at the fault), fetched {source.Fetched}, fetch errors {source.FetchErrors}, settle errors {pipeline.Stats.SettleErrors}");
        pipeline.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        output.WriteLine($"{doneAtFault} done at the fault; fetched {source.Fetched}, fetch errors {source.FetchErrors}, settle errors {pipeline.Stats.SettleErrors}, skipped {pipeline.Stats.Skipped}");
        Assert.True(doneAtFault < count, "the fault came mid-run");
        Assert.Equal(ids.Order(StringComparer.Ordinal), sink.CompletedById.Keys.Order(StringComparer.Ordinal)); // none lost
        Assert.Equal(0, pipeline.Stats.InFlight); // none stuck here
        Assert.Equal(0, pipeline.Stats.Failed);
        Assert.Equal(0, pipeline.Stats.BlockFaults);
    }

    [Fact]
    public async Task An_ack_while_the_server_is_down_gives_up_at_its_deadline()
    {
        await using (var publisher = Server.Connect("publisher"))
        {
            await JetStream.PublishAsync(publisher, $"{Stream}.c", [TestCommands.Make("one")]);
        }

        await using var consumer = Server.Connect("consumer");
        await using var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "workers", SettleTimeout = TimeSpan.FromSeconds(1) });
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var item = (await source.NextAsync(bound.Token))!.Value;
        await Server.KillAsync();
        await Eventually.WaitForAsync(() => Task.FromResult(consumer.ConnectionState != NatsConnectionState.Open), TimeSpan.FromSeconds(10), "the client saw the server go");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Bounded here, so a missing deadline fails the test instead of hanging it.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => source.AckAsync(item.Handle, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(3));
    }
}
