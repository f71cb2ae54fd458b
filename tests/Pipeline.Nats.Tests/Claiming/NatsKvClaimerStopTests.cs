namespace Pipeline.Nats.Tests.Claiming;

/// <summary>
/// The stop's hand-back with the KV claimer (<c>--kv-claimer</c>): the claimer releases each claim
/// (IClaimRecorder) before its nack, so the stop hands back the claimed commands that have not
/// started, as it does without a claimer, instead of keeping them all until they have run.
/// </summary>
[Collection(NatsCollection.Name)]
public sealed class NatsKvClaimerStopTests(NatsServerFixture server) : StreamTest(server, "kvstop")
{
    [Fact]
    public async Task With_the_kv_claimer_a_stop_hands_back_the_claimed_commands_that_have_not_started()
    {
        await JetStream.PublishAsync(Connection, $"{Stream}.c", Enumerable.Range(0, 20).Select(i => TestCommands.Make($"kvstop-{i}", toolKind: "held")));
        await using var consumer = Server.Connect("kvstop-worker");
        await using var claims = Server.Connect("kvstop-claims");
        await using var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "pool", FetchExpires = TimeSpan.FromSeconds(1), FetchBatch = 32 });
        await source.InitializeAsync(CancellationToken.None);
        var claimer = new NatsKvClaimer(claims, new NatsKvClaimerOptions { Bucket = NatsServerFixture.UniqueName("kvstopclaims"), WorkerId = "w1" });
        var tool = new GatedTool("held");
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(extra: [tool]), new CollectingSink(), new PipelineOptions
        {
            Dispatch = new BlockOptions { Parallelism = 2 },
            ShutdownTimeout = TimeSpan.FromSeconds(60),
        }, claimer);
        var run = pipeline.RunAsync(CancellationToken.None);
        try
        {
            await Eventually.WaitForAsync(
                () => Task.FromResult(tool.Started == 2 && pipeline.Stats.Pulled == 20 && pipeline.Stats.Blocks.Dispatch.Queued == 18),
                TimeSpan.FromSeconds(20),
                "two running, eighteen claimed and waiting for a slot",
                () => $"started {tool.Started}, pulled {pipeline.Stats.Pulled}, dispatch queued {pipeline.Stats.Blocks.Dispatch.Queued}");

            pipeline.RequestStop();
            // The source's stop reads its last pull request to its end (FetchExpires 1 s, + 1 s at most): 10 s is ample.
            var bound = DateTime.UtcNow.AddSeconds(10);
            while (pipeline.Stats.HandedBack < 18 && DateTime.UtcNow < bound)
            {
                await Task.Delay(20);
            }
        }
        finally
        {
            tool.Release();
            await run.WaitAsync(TimeSpan.FromSeconds(60));
        }

        Assert.Equal(18, pipeline.Stats.HandedBack); // each claimed command not started is handed back, none kept
        Assert.Equal(2, tool.Started); // the stop does not run the queued work itself
    }
}
