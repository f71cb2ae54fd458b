using Pipeline.Commands;
using Pipeline.Nats.Claiming;
using Pipeline.Nats.Tests.Support;

namespace Pipeline.Nats.Tests.Review;

/// <summary>review8: the KV claimer with command ids at the edge of what a KV key may be.</summary>
[Collection(NatsCollection.Name)]
public sealed class Review8ClaimerTests(NatsServerFixture server) : IAsyncLifetime
{
    public Task InitializeAsync() => server.StartAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>
    /// Any command id is claimable: one KeyFor keeps verbatim must be a key the server takes,
    /// or the claim throws on every delivery and the command is retried forever, never run.
    /// </summary>
    [Theory]
    [InlineData("a..b")]
    [InlineData("a.b")]
    [InlineData("=/_-")]
    [InlineData("ünïcode")]
    [InlineData("has space")]
    [InlineData("a*b")]
    [InlineData("a>b")]
    public async Task Every_command_id_is_claimed_once_then_already_claimed(string commandId)
    {
        await using var connection = server.Connect("claims");
        await using var claimer = new NatsKvClaimer(connection, new NatsKvClaimerOptions { Bucket = NatsServerFixture.UniqueName("claims"), WorkerId = "w" });
        var command = Harness.Make(commandId);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var first = await claimer.ClaimAsync(ClaimOutcome.Claimed(command), bound.Token);
        // Completed: the record is written under the same key, and a second publish finds it.
        await claimer.RecordOutcomeAsync(first, succeeded: true, bound.Token);
        var second = await claimer.ClaimAsync(ClaimOutcome.Claimed(command), bound.Token);

        Assert.Equal(ClaimOutcomeKind.Claimed, first.Kind);
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, second.Kind);
    }

    /// <summary>
    /// A long command id of valid characters is kept verbatim as the key, so the subject of the KV
    /// publish outgrows the server's control line (4 KB by default): the server closes the
    /// connection, the one events share, on every delivery of that command.
    /// </summary>
    [Fact]
    public async Task A_command_id_longer_than_the_servers_control_line_is_claimed()
    {
        await using var connection = server.Connect("claims");
        await using var claimer = new NatsKvClaimer(connection, new NatsKvClaimerOptions { Bucket = NatsServerFixture.UniqueName("claims"), WorkerId = "w" });
        var command = Harness.Make(new string('a', 5000));
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var first = await claimer.ClaimAsync(ClaimOutcome.Claimed(command), bound.Token);
        // Completed: the record is written under the same key, and a second publish finds it.
        await claimer.RecordOutcomeAsync(first, succeeded: true, bound.Token);
        var second = await claimer.ClaimAsync(ClaimOutcome.Claimed(command), bound.Token);

        Assert.Equal(ClaimOutcomeKind.Claimed, first.Kind);
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, second.Kind);
        Assert.True(NatsKvClaimer.KeyFor(command.CommandId).Length <= 256);
    }
}
