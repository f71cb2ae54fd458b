using NATS.Client.Core;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Nats.Claiming;
using Pipeline.Nats.Sources;
using Pipeline.Nats.Tests.Support;

namespace Pipeline.Nats.Tests.Claiming;

[Collection(NatsCollection.Name)]
public sealed class NatsKvClaimerTests(NatsServerFixture server) : IAsyncLifetime
{
    private readonly string _stream = NatsServerFixture.UniqueName("kv");
    private NatsConnection _connection = null!;

    public async Task InitializeAsync()
    {
        await server.StartAsync();
        _connection = server.Connect("kv");
        await Harness.CreateStreamAsync(_connection, _stream, $"{_stream}.>");
    }

    public async Task DisposeAsync() => await _connection.DisposeAsync();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Each_command_published_twice_runs_once_across_two_workers_with_the_claimer(bool claimer)
    {
        const int count = 300;
        var commands = Enumerable.Range(0, count).Select(i => Harness.Make($"dup-{i}", tool: "slow")).ToList();
        await Harness.PublishAsync(_connection, $"{_stream}.c", commands);
        await Harness.PublishAsync(_connection, $"{_stream}.c", commands); // every command a second time
        var slow = new SlowTool(TimeSpan.FromMilliseconds(1));
        var bucket = NatsServerFixture.UniqueName("claims");
        var workers = new List<(NatsConnection Consumer, NatsConnection Claims, NatsCommandSource Source, CommandPipeline<NatsHandle> Pipeline, CountingSink Sink)>();
        for (var w = 0; w < 2; w++)
        {
            var consumer = server.Connect($"worker-{w}");
            var claims = server.Connect($"claims-{w}");
            var source = new NatsCommandSource(consumer, new NatsSourceOptions { Stream = _stream, Consumer = "pool", FetchExpires = TimeSpan.FromSeconds(1), FetchBatch = 16 }, trackOrigins: true);
            await source.InitializeAsync(CancellationToken.None);
            var kv = new NatsKvClaimer(claims, new NatsKvClaimerOptions { Bucket = bucket, WorkerId = $"w{w}" }, source.OriginOf);
            var sink = new CountingSink();
            // RecentCommandIds 0: the engine's own duplicate cache is off, so only the claimer can stop a second run.
            var pipeline = new CommandPipeline<NatsHandle>(source, ToolRegistry.CreateBuiltIn(extra: [slow]), sink, new PipelineOptions { RecentCommandIds = 0, Claim = new BlockOptions { Parallelism = 32 } }, claimer ? kv : null);
            workers.Add((consumer, claims, source, pipeline, sink));
        }

        try
        {
            var runs = workers.Select(w => w.Pipeline.RunAsync(CancellationToken.None)).ToArray();
            await Harness.EventuallyAsync(
                async () => (await Harness.ConsumerInfoAsync(_connection, _stream, "pool")) is { NumAckPending: 0, NumPending: 0 } && workers.Sum(w => w.Pipeline.Stats.Acked) == 2 * count,
                TimeSpan.FromSeconds(60),
                "every delivery acked",
                () => $"acked {workers.Sum(w => w.Pipeline.Stats.Acked)}");
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

        Assert.Equal(count, slow.Runs.Count);
        if (claimer)
        {
            Assert.All(slow.Runs, run => Assert.Equal(1, run.Value));
            Assert.Equal(count, workers.Sum(w => w.Pipeline.Stats.Skipped));
            Assert.True(workers.All(w => w.Pipeline.Stats.Completed > 0), "both workers took part");
        }
        else
        {
            // The control: without the claimer the second publish runs again.
            Assert.Equal(2 * count, slow.Runs.Values.Sum());
        }
    }

    [Fact]
    public async Task A_redelivery_of_the_same_stream_message_claims_again_but_another_publish_does_not()
    {
        var bucket = NatsServerFixture.UniqueName("claims");
        var command = Harness.Make("same");
        ulong? origin = 41;
        var claimer = new NatsKvClaimer(_connection, new NatsKvClaimerOptions { Bucket = bucket }, _ => origin);

        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, (await claimer.ClaimAsync(Commands.ClaimOutcome.Claimed(command), CancellationToken.None)).Kind);
        Assert.Equal(Commands.ClaimOutcomeKind.Claimed, (await claimer.ClaimAsync(Commands.ClaimOutcome.Claimed(command), CancellationToken.None)).Kind);
        origin = 42;
        Assert.Equal(Commands.ClaimOutcomeKind.AlreadyClaimed, (await claimer.ClaimAsync(Commands.ClaimOutcome.Claimed(command), CancellationToken.None)).Kind);
        origin = null;
        Assert.Equal(Commands.ClaimOutcomeKind.AlreadyClaimed, (await claimer.ClaimAsync(Commands.ClaimOutcome.Claimed(command), CancellationToken.None)).Kind);
    }

    [Theory]
    [InlineData("plain-id_1", "plain-id_1")]
    [InlineData("with space", "sha256.")]
    [InlineData(".leading", "sha256.")]
    [InlineData("ünïcode", "sha256.")]
    public void Command_ids_that_are_not_valid_keys_are_hashed(string id, string expectedPrefix) =>
        Assert.StartsWith(expectedPrefix, NatsKvClaimer.KeyFor(id), StringComparison.Ordinal);
}
