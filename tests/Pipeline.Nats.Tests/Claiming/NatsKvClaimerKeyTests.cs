namespace Pipeline.Nats.Tests.Claiming;

/// <summary>NatsKvClaimer.KeyFor: every command id, however long or odd, maps to a KV key the server takes.</summary>
[Collection(NatsCollection.Name)]
public sealed class NatsKvClaimerKeyTests(NatsServerFixture server) : IAsyncLifetime
{
    public Task InitializeAsync() => server.StartAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>
    /// Any command id is claimable: one KeyFor keeps verbatim is a key the server takes (else the
    /// claim would throw on every delivery and the command be retried forever, never run).
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
        var command = TestCommands.Make(commandId);

        var (first, second) = await ClaimCompleteAndClaimAgainAsync(command);

        Assert.Equal(ClaimOutcomeKind.Claimed, first.Kind);
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, second.Kind);
    }

    /// <summary>
    /// A command id longer than the server's control line (4 KB by default) is claimed: its key is
    /// at most 256 characters, so the KV publish's subject never makes the server close the
    /// connection (the one events share) on every delivery of that command.
    /// </summary>
    [Fact]
    public async Task A_command_id_longer_than_the_servers_control_line_is_claimed()
    {
        var command = TestCommands.Make(new string('a', 5000));

        var (first, second) = await ClaimCompleteAndClaimAgainAsync(command);

        Assert.Equal(ClaimOutcomeKind.Claimed, first.Kind);
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, second.Kind);
        Assert.True(NatsKvClaimer.KeyFor(command.CommandId).Length <= 256);
    }

    [Theory]
    [InlineData("plain-id_1", "plain-id_1")]
    [InlineData("with space", "sha256.")]
    [InlineData(".leading", "sha256.")]
    [InlineData("ünïcode", "sha256.")]
    public void Command_ids_that_are_not_valid_keys_are_hashed(string id, string expectedPrefix) =>
        Assert.StartsWith(expectedPrefix, NatsKvClaimer.KeyFor(id), StringComparison.Ordinal);

    /// <summary>Claims <paramref name="command"/>, records it completed (the record is written under the same key), and claims it again as a second publish would.</summary>
    private async Task<(ClaimOutcome First, ClaimOutcome Second)> ClaimCompleteAndClaimAgainAsync(Command command)
    {
        await using var connection = server.Connect("claims");
        await using var claimer = new NatsKvClaimer(connection, new NatsKvClaimerOptions { Bucket = NatsServerFixture.UniqueName("claims"), WorkerId = "w" });
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var first = await claimer.ClaimAsync(ClaimContexts.Delivered(command), bound.Token);
        await claimer.RecordOutcomeAsync(first, succeeded: true, bound.Token);
        var second = await claimer.ClaimAsync(ClaimContexts.Delivered(command), bound.Token);
        return (first, second);
    }
}
