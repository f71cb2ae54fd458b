namespace Pipeline.Nats.Tests.Claiming;

[Collection(NatsCollection.Name)]
public sealed class NatsKvClaimerTests(NatsServerFixture server, ITestOutputHelper output) : StreamTest(server, "kv")
{
    /// <summary>
    /// Two in-process workers (each its own connections) on one durable consumer. With the KV
    /// claimer every command runs exactly once, also when each was published twice; without it,
    /// once published once, and the control shows the second publish running again.
    /// </summary>
    [Theory]
    [InlineData(true, true, 10_000)]
    [InlineData(false, false, 10_000)]
    [InlineData(false, true, 300)] // the control: without the claimer the duplicates run
    public async Task Two_workers_on_one_consumer_complete_every_command_and_with_the_claimer_run_each_once_even_published_twice(bool claimer, bool twice, int count)
    {
        var seed = Seeds.Next(output);
        var random = new Random(seed);
        // Tool times of 0-2 ms, and the duplicates shuffled in among the originals, from the seed.
        var commands = Enumerable.Range(0, count).Select(i => TestCommands.Make($"dup-{i}", toolKind: "slow", inputJson: $$"""{"ms": {{random.Next(3)}}}""")).ToList();
        List<Pipeline.Commands.Command> published = twice ? [.. commands, .. commands] : [.. commands];
        if (twice)
        {
            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(published)[(count / 2)..]);
        }

        await JetStream.PublishAsync(Connection, $"{Stream}.c", published);
        var slow = new SlowTool(TimeSpan.Zero);
        var bucket = NatsServerFixture.UniqueName("claims");
        var workers = new List<(NatsConnection Consumer, NatsConnection Claims, NatsCommandSource Source, CommandPipeline<NatsHandle> Pipeline, CollectingSink Sink)>();
        for (var w = 0; w < 2; w++)
        {
            var consumer = Server.Connect($"worker-{w}");
            var claims = Server.Connect($"claims-{w}");
            var batch = random.Next(4, 65);
            output.WriteLine($"worker {w}: fetch batch {batch}");
            var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "pool", FetchExpires = TimeSpan.FromSeconds(1), FetchBatch = batch });
            await source.InitializeAsync(CancellationToken.None);
            var kv = new NatsKvClaimer(claims, new NatsKvClaimerOptions { Bucket = bucket, WorkerId = $"w{w}" });
            var sink = new CollectingSink();
            // RecentCommandIds 0: the engine's own duplicate cache is off, so only the claimer can stop a second run.
            var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(extra: [slow]), sink, new PipelineOptions
            {
                RecentCommandIds = 0,
                MaxInFlight = 512,
                Claim = new BlockOptions { Parallelism = 32 },
                Dispatch = new BlockOptions { Parallelism = 64 },
            }, claimer ? kv : null);
            workers.Add((consumer, claims, source, pipeline, sink));
        }

        try
        {
            var runs = workers.Select(w => w.Pipeline.RunAsync(CancellationToken.None)).ToArray();
            await Eventually.WaitForAsync(
                async () => (await JetStream.ConsumerInfoAsync(Connection, Stream, "pool")) is { NumAckPending: 0, NumPending: 0 } && workers.Sum(w => w.Pipeline.Stats.Acked) == published.Count,
                TimeSpan.FromSeconds(60),
                $"every delivery acked (seed {seed})",
                () => $"acked {workers.Sum(w => w.Pipeline.Stats.Acked)} of {published.Count}, runs {slow.Runs.Count}");
            foreach (var w in workers)
            {
                w.Pipeline.RequestStop();
            }

            await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var w in workers)
            {
                await w.Source.DisposeAsync();
                await w.Consumer.DisposeAsync();
                await w.Claims.DisposeAsync();
            }
        }

        output.WriteLine($"completed per worker: {string.Join(", ", workers.Select(w => w.Pipeline.Stats.Completed))}; skipped {workers.Sum(w => w.Pipeline.Stats.Skipped)}");
        Assert.Equal(count, slow.Runs.Count); // none lost
        Assert.Equal(count, workers.SelectMany(w => w.Sink.CompletedById.Keys).Distinct().Count()); // each completed
        Assert.True(workers.All(w => w.Pipeline.Stats.Completed > 0), "both workers took part");
        Assert.All(workers, w => Assert.Equal(0, w.Pipeline.Stats.InFlight));
        if (claimer || !twice)
        {
            Assert.All(slow.Runs, run => Assert.True(run.Value == 1, $"{run.Key} ran {run.Value} times (seed {seed})"));
            Assert.Equal(published.Count - count, workers.Sum(w => w.Pipeline.Stats.Skipped));
        }
        else
        {
            // The control: without the claimer the second publish runs again.
            Assert.Equal(2 * count, slow.Runs.Values.Sum());
        }
    }

    [Fact]
    public async Task A_redelivery_of_the_same_stream_message_claims_again_and_another_publish_waits_until_the_first_has_ended()
    {
        var bucket = NatsServerFixture.UniqueName("claims");
        var command = TestCommands.Make("same");
        ulong? origin = 41;
        await using var claimer = new NatsKvClaimer(Connection, new NatsKvClaimerOptions { Bucket = bucket });

        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, (await claimer.ClaimAsync(ClaimContexts.Delivered(command, origin), CancellationToken.None)).Kind);
        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, (await claimer.ClaimAsync(ClaimContexts.Delivered(command, origin), CancellationToken.None)).Kind);
        origin = 42;
        Assert.Equal(Commands.ClaimOutcomeKind.RetryLater, (await claimer.ClaimAsync(ClaimContexts.Delivered(command, origin), CancellationToken.None)).Kind);
        origin = null;
        Assert.Equal(Commands.ClaimOutcomeKind.RetryLater, (await claimer.ClaimAsync(ClaimContexts.Delivered(command, origin), CancellationToken.None)).Kind);
        await claimer.RecordOutcomeAsync(Commands.ClaimOutcome.Claimed(command), succeeded: true, CancellationToken.None);
        origin = 42;
        Assert.Equal(Commands.ClaimOutcomeKind.AlreadyClaimed, (await claimer.ClaimAsync(ClaimContexts.Delivered(command, origin), CancellationToken.None)).Kind);
    }

    /// <summary>
    /// The claimer's redelivery rule on deliveries the source describes itself (the claim's
    /// context), not sequences made up by the test: a redelivery of the stream message it holds
    /// claims again, a second publish of the command (another stream sequence) waits while the
    /// claim is held, and is skipped once the command has ended.
    /// </summary>
    [Fact]
    public async Task On_the_sources_own_deliveries_a_redelivery_claims_again_and_a_second_publish_waits_until_the_first_has_ended()
    {
        var command = TestCommands.Make("real-same");
        var published = await JetStream.PublishAsync(Connection, $"{Stream}.c", [command]);
        await using var consumer = Server.Connect("kv-real");
        await using var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "real", FetchExpires = TimeSpan.FromSeconds(1) });
        await using var claimer = new NatsKvClaimer(Connection, new NatsKvClaimerOptions { Bucket = NatsServerFixture.UniqueName("claims") });
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        async Task<(NatsHandle Handle, Commands.ClaimOutcome Outcome)> PullAndClaimAsync()
        {
            var pulled = (await source.NextAsync(bound.Token))!.Value;
            var outcome = await claimer.ClaimAsync(new Pipeline.Claiming.ClaimContext(pulled.Outcome, source.DeliveryOf(pulled.Handle)), bound.Token);
            return (pulled.Handle, outcome);
        }

        var first = await PullAndClaimAsync();
        await source.NackAsync(first.Handle, CancellationToken.None); // the claim is kept: a lost ack, a redelivery racing the first
        var redelivered = await PullAndClaimAsync();
        var republished = await JetStream.PublishAsync(Connection, $"{Stream}.c", [command]);
        var second = await PullAndClaimAsync();
        await claimer.RecordOutcomeAsync(redelivered.Outcome, succeeded: true, CancellationToken.None);
        await source.AckAsync(redelivered.Handle, CancellationToken.None);
        await source.NackAsync(second.Handle, CancellationToken.None);
        var secondAgain = await PullAndClaimAsync();
        await source.AckAsync(secondAgain.Handle, CancellationToken.None);

        Assert.Equal(published[0], first.Handle.StreamSequence);
        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, first.Outcome.Kind);
        Assert.Equal((published[0], 2UL), (redelivered.Handle.StreamSequence, redelivered.Handle.NumDelivered));
        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, redelivered.Outcome.Kind);
        Assert.Equal(republished[0], second.Handle.StreamSequence);
        Assert.Equal(Commands.ClaimOutcomeKind.RetryLater, second.Outcome.Kind);
        Assert.Equal(republished[0], secondAgain.Handle.StreamSequence);
        Assert.Equal(Commands.ClaimOutcomeKind.AlreadyClaimed, secondAgain.Outcome.Kind);
    }

    /// <summary>
    /// Through the pipeline, each command's claim record carries the stream sequence the command
    /// was published at: the Claim block hands the claimer the source's description of the very
    /// delivery it claims. Without it the record has no sequence, and the claimer cannot tell its
    /// own redelivery from a second publish.
    /// </summary>
    [Fact]
    public async Task Through_the_pipeline_each_claim_record_names_the_stream_sequence_its_command_was_published_at()
    {
        const int count = 200;
        var commands = Enumerable.Range(0, count).Select(i => TestCommands.Make($"seq-{i}")).ToList();
        var published = await JetStream.PublishAsync(Connection, $"{Stream}.c", commands);
        var bucket = NatsServerFixture.UniqueName("claims");
        await using var consumer = Server.Connect("kv-seq");
        await using var claims = Server.Connect("kv-seq-claims");
        await using var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = Stream, Consumer = "seq", FetchExpires = TimeSpan.FromSeconds(1) });
        await using var claimer = new NatsKvClaimer(claims, new NatsKvClaimerOptions { Bucket = bucket, WorkerId = "w" });
        var sink = new CollectingSink();
        var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(), sink, new PipelineOptions { Claim = new BlockOptions { Parallelism = 8 } }, claimer);

        await PipelineRuns.RunUntilAsync(pipeline, () => sink.CompletedIds == count, TimeSpan.FromSeconds(60), "all completed", () => $"{sink.CompletedIds} completed");

        var store = await new NATS.Client.KeyValueStore.NatsKVContext(new NATS.Client.JetStream.NatsJSContext(Connection)).GetStoreAsync(bucket);
        for (var i = 0; i < count; i++)
        {
            var entry = await store.GetEntryAsync<byte[]>(NatsKvClaimer.KeyFor(commands[i].CommandId));
            Assert.Equal(new ClaimRecord(ClaimState.Completed, "w", claimer.Instance, published[i]), ClaimRecord.Parse(entry.Value));
        }
    }
}
