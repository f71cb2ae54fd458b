using NATS.Client.KeyValueStore;
using Pipeline.Claiming;

namespace Pipeline.Nats.Tests.Claiming;

/// <summary>
/// The KV claimer's record of each claim, state by state, against the real server: what a
/// delivery finds (nothing, completed, failed, released, claimed by a live worker, by a gone one,
/// by itself) decides whether it runs, is skipped, or comes back later.
/// </summary>
[Collection(NatsCollection.Name)]
public sealed class NatsKvClaimRecordTests(NatsServerFixture server) : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private readonly string _bucket = NatsServerFixture.UniqueName("claims");
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly Dictionary<NatsKvClaimer, Func<ulong?>> _sequenceOf = [];
    private NatsConnection _admin = null!;

    public async Task InitializeAsync()
    {
        await server.StartAsync();
        _admin = server.Connect("admin");
    }

    public async Task DisposeAsync()
    {
        await server.StartAsync(); // a test that killed it leaves it running for the next
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _admin.DisposeAsync();
    }

    /// <summary>A claimer of its own (its own connection, so it can be killed alone), claiming every command as delivered with <paramref name="sequence"/>.</summary>
    /// <summary>Workers a and b (both told <paramref name="sequence"/> as the origin), and <paramref name="id"/> claimed by a.</summary>
    private async Task<(NatsKvClaimer A, NatsKvClaimer B, Command Command)> ClaimedByAAsync(string id, Func<ulong?> sequence, NatsKvClaimerOptions? options = null)
    {
        var (a, _) = Worker("a", sequence, options);
        var (b, _) = Worker("b", sequence, options);
        var command = TestCommands.Make(id);
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, command));
        return (a, b, command);
    }

    private (NatsKvClaimer Claimer, NatsConnection Connection) Worker(string id, Func<ulong?> sequence, NatsKvClaimerOptions? options = null, NatsOpts? connection = null)
    {
        var nats = new NatsConnection(connection ?? server.Options(id));
        var claimer = new NatsKvClaimer(nats, (options ?? new NatsKvClaimerOptions()) with { Bucket = _bucket, WorkerId = id });
        _sequenceOf[claimer] = sequence;
        _owned.Add(nats);
        _owned.Add(claimer);
        return (claimer, nats);
    }

    private async Task<ClaimRecord?> RecordAsync(Command command)
    {
        var store = await new NatsKVContext(new NatsJSContext(_admin)).GetStoreAsync(_bucket);
        var entry = await store.TryGetEntryAsync<byte[]>(NatsKvClaimer.KeyFor(command.CommandId));
        return entry.Success ? ClaimRecord.Parse(entry.Value.Value) : null;
    }

    private async Task<bool> HeartbeatExistsAsync(NatsKvClaimer claimer)
    {
        var store = await new NatsKVContext(new NatsJSContext(_admin)).GetStoreAsync(claimer.Options.WorkersBucket);
        return (await store.TryGetEntryAsync<byte[]>(claimer.Instance)).Success;
    }

    /// <summary>The claim's context as the source gives it: <paramref name="command"/> delivered with the stream sequence <paramref name="claimer"/>'s worker sees now.</summary>
    private ClaimContext Delivered(NatsKvClaimer claimer, Command command) => ClaimContexts.Delivered(command, _sequenceOf[claimer]());

    private async Task<ClaimOutcomeKind> ClaimAsync(NatsKvClaimer claimer, Command command)
    {
        using var bound = new CancellationTokenSource(Bound);
        return (await claimer.ClaimAsync(Delivered(claimer, command), bound.Token)).Kind;
    }

    [Fact]
    public async Task A_new_command_is_claimed_and_its_record_names_the_worker_and_the_stream_sequence()
    {
        var (a, _) = Worker("a", () => 41);
        var command = TestCommands.Make("new-1");

        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, command));

        var record = await RecordAsync(command);
        Assert.Equal(new ClaimRecord(ClaimState.Claimed, "a", a.Instance, 41), record);
        Assert.True(await HeartbeatExistsAsync(a), "a claimer beats before its first claim");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_redelivery_of_a_command_that_ran_to_its_end_is_already_claimed_by_any_worker(bool succeeded)
    {
        ulong? sequence = 7;
        var (a, b, command) = await ClaimedByAAsync("ended-1", () => sequence);

        await a.RecordOutcomeAsync(ClaimOutcome.Claimed(command), succeeded, CancellationToken.None);

        Assert.Equal(succeeded ? ClaimState.Completed : ClaimState.Failed, (await RecordAsync(command))!.State);
        // The ack was lost: the same stream message comes back, to the pool or to the same worker.
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, await ClaimAsync(b, TestCommands.Make("ended-1")));
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, await ClaimAsync(a, TestCommands.Make("ended-1")));
        sequence = 8; // and a second publish of it
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, await ClaimAsync(b, TestCommands.Make("ended-1")));
    }

    [Fact]
    public async Task A_claim_held_by_a_live_worker_is_retry_later_for_another_and_left_as_it_is()
    {
        var (a, b, command) = await ClaimedByAAsync("live-1", () => 3);
        var before = await RecordAsync(command);

        using var bound = new CancellationTokenSource(Bound);
        var outcome = await b.ClaimAsync(Delivered(b, TestCommands.Make("live-1")), bound.Token);

        Assert.Equal(ClaimOutcomeKind.RetryLater, outcome.Kind);
        Assert.Contains("claimed by worker a", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(before, await RecordAsync(command));
    }

    [Fact]
    public async Task A_released_claim_is_claimed_by_the_next_delivery()
    {
        var (a, b, command) = await ClaimedByAAsync("released-1", () => 9);

        await a.ReleaseAsync(ClaimOutcome.Claimed(command), CancellationToken.None);

        Assert.Null(await RecordAsync(command));
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(b, TestCommands.Make("released-1")));
        Assert.Equal("b", (await RecordAsync(command))!.Worker);
    }

    /// <summary>
    /// A worker killed mid-run: its heartbeat expires after the worker timeout, and its claims are
    /// taken over. Two workers after the same twenty claims at once: each is taken by exactly one
    /// (the compare-and-set on the record's revision), the other is told to retry later.
    /// </summary>
    [Fact]
    public async Task A_claim_of_a_killed_worker_is_taken_over_by_exactly_one_of_two_concurrent_claimers()
    {
        var fast = new NatsKvClaimerOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(250), WorkerTimeout = TimeSpan.FromSeconds(1) };
        var (a, aConnection) = Worker("a", () => 11, fast);
        var (b, _) = Worker("b", () => 11, fast);
        var (c, _) = Worker("c", () => 11, fast);
        var ids = Enumerable.Range(0, 20).Select(i => $"gone-{i}").ToList();
        foreach (var id in ids)
        {
            Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, TestCommands.Make(id)));
        }

        // Bound both others first, so each has its own heartbeat before the race.
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(b, TestCommands.Make("warm-b")));
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(c, TestCommands.Make("warm-c")));
        Assert.Equal(ClaimOutcomeKind.RetryLater, await ClaimAsync(b, TestCommands.Make(ids[0]))); // a is alive yet

        await aConnection.DisposeAsync(); // killed: no more heartbeats, no goodbye
        await Eventually.WaitForAsync(async () => !await HeartbeatExistsAsync(a), Bound, "a's heartbeat expired");

        var raced = await Task.WhenAll(ids.Select(async id =>
        {
            var both = await Task.WhenAll(ClaimAsync(b, TestCommands.Make(id)), ClaimAsync(c, TestCommands.Make(id)));
            return (Id: id, B: both[0], C: both[1]);
        }));

        foreach (var (id, byB, byC) in raced)
        {
            Assert.True(
                (byB, byC) is (ClaimOutcomeKind.Claimed, ClaimOutcomeKind.RetryLater) or (ClaimOutcomeKind.RetryLater, ClaimOutcomeKind.Claimed),
                $"{id}: b {byB}, c {byC}");
            var record = await RecordAsync(TestCommands.Make(id));
            Assert.Equal(byB == ClaimOutcomeKind.Claimed ? b.Instance : c.Instance, record!.Instance);
        }
    }

    [Fact]
    public async Task A_clean_stop_deletes_the_heartbeat_so_its_unreleased_claims_are_taken_over_at_once()
    {
        var (a, b, command) = await ClaimedByAAsync("stopped-1", () => 12);
        Assert.Equal(ClaimOutcomeKind.RetryLater, await ClaimAsync(b, TestCommands.Make("stopped-1")));

        await a.DisposeAsync();

        Assert.False(await HeartbeatExistsAsync(a));
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(b, TestCommands.Make("stopped-1")));
    }

    /// <summary>
    /// A redelivery of the same stream message that raced the first claim (the engine did not yet
    /// hold it back as running here) shares the claim: the first delivery to end writes the
    /// outcome, and a release by one of two holders leaves the claim to the other. A second
    /// publish while the claim is held here comes back later, and once it has ended is skipped.
    /// </summary>
    [Fact]
    public async Task A_redelivery_of_the_same_message_shares_the_claim_held_here_and_another_publish_is_retried_later()
    {
        ulong? sequence = 20;
        var (a, _) = Worker("a", () => sequence);
        var first = TestCommands.Make("own-1");
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, first));
        var claimed = await RecordAsync(first);

        var redelivered = TestCommands.Make("own-1");
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, redelivered));
        sequence = 21;
        Assert.Equal(ClaimOutcomeKind.RetryLater, await ClaimAsync(a, TestCommands.Make("own-1")));

        await a.ReleaseAsync(ClaimOutcome.Claimed(redelivered), CancellationToken.None);
        Assert.Equal(claimed, await RecordAsync(first)); // the first still holds it
        await a.RecordOutcomeAsync(ClaimOutcome.Claimed(first), succeeded: true, CancellationToken.None);
        Assert.Equal(new ClaimRecord(ClaimState.Completed, "a", a.Instance, 20), await RecordAsync(first));
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, await ClaimAsync(a, TestCommands.Make("own-1")));
    }

    /// <summary>
    /// Two publishes of one command claimed at once by one worker: exactly one is granted, the
    /// other waits. The second, reading the record the first had just created before the first
    /// listed its grant, took the record for one this worker no longer held and was granted too
    /// (one command in 10,000 ran twice in the two-worker test, about every other run).
    /// </summary>
    [Fact]
    public async Task Of_two_publishes_claimed_at_once_by_one_worker_exactly_one_is_granted()
    {
        var (a, _) = Worker("a", () => null);
        using var bound = new CancellationTokenSource(Bound);
        var wrong = new List<string>();
        for (var i = 0; i < 400; i++)
        {
            var id = $"both-{i}";
            var both = await Task.WhenAll(
                Task.Run(async () => (await a.ClaimAsync(ClaimContexts.Delivered(TestCommands.Make(id), 70), bound.Token)).Kind),
                Task.Run(async () => (await a.ClaimAsync(ClaimContexts.Delivered(TestCommands.Make(id), 71), bound.Token)).Kind));
            if (both.Order().ToArray() is not [ClaimOutcomeKind.Claimed, ClaimOutcomeKind.RetryLater])
            {
                wrong.Add($"{id}: {both[0]}, {both[1]}");
            }
        }

        Assert.Empty(wrong);
    }

    /// <summary>
    /// A second publish claimed here while the first delivery's outcome is being written (its
    /// grant ended, the record not yet rewritten): it must wait, or be skipped once the outcome has
    /// landed, never be granted: taken from under the write, the command ran twice (one in 10,000
    /// in the two-worker test, about every other run). The claim and the write start a moment
    /// apart, over many commands, so some claim reads the record before the write lands.
    /// </summary>
    [Fact]
    public async Task A_second_publish_claimed_while_the_outcome_is_written_is_never_granted()
    {
        ulong? sequence = 60;
        var (a, _) = Worker("a", () => sequence);
        var random = new Random(60);
        var granted = new List<string>();
        for (var i = 0; i < 400; i++)
        {
            var first = TestCommands.Make($"writing-{i}");
            sequence = 60;
            Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, first));
            sequence = 61; // the second publish
            var second = ClaimAsync(a, TestCommands.Make($"writing-{i}"));
            // 0 to 1.5 ms: about a round trip or two, so some writes start between the claim's read and its answer.
            var until = System.Diagnostics.Stopwatch.GetTimestamp() + (random.Next(1_500) * System.Diagnostics.Stopwatch.Frequency / 1_000_000);
            while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
            {
                Thread.SpinWait(10);
            }

            await a.RecordOutcomeAsync(ClaimOutcome.Claimed(first), succeeded: true, CancellationToken.None);
            if (await second == ClaimOutcomeKind.Claimed)
            {
                granted.Add(first.CommandId);
            }
        }

        Assert.Empty(granted);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_release_or_an_outcome_from_a_worker_whose_claim_was_taken_over_leaves_the_new_claim(bool release)
    {
        // A long interval: the test takes a's heartbeat away by hand, and a must not put it back meanwhile.
        var slow = new NatsKvClaimerOptions { HeartbeatInterval = TimeSpan.FromSeconds(30), WorkerTimeout = TimeSpan.FromMinutes(1) };
        var (a, b, command) = await ClaimedByAAsync("taken-1", () => 30, slow);
        var workers = await new NatsKVContext(new NatsJSContext(_admin)).GetStoreAsync(a.Options.WorkersBucket);
        await workers.DeleteAsync(a.Instance); // a looks gone (a long pause, a partition)
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(b, TestCommands.Make("taken-1")));
        var taken = await RecordAsync(command);

        if (release)
        {
            await a.ReleaseAsync(ClaimOutcome.Claimed(command), CancellationToken.None);
        }
        else
        {
            await a.RecordOutcomeAsync(ClaimOutcome.Claimed(command), succeeded: true, CancellationToken.None);
        }

        Assert.Equal(taken, await RecordAsync(command));
        Assert.Equal(b.Instance, taken!.Instance);
    }

    /// <summary>
    /// The outcome is written as the server stops answering (paused, then killed -9 and
    /// restarted): the write sent to the paused server gets no reply within the client's request
    /// timeout (1 s here), and is retried until it lands on the restarted one, so the record says
    /// completed and the redelivery of a lost ack is skipped.
    /// </summary>
    [Fact]
    public async Task An_outcome_written_as_the_server_dies_is_retried_until_it_lands_on_the_restarted_one()
    {
        var (a, _) = Worker("a", () => 50, connection: server.Options("a") with { RequestTimeout = TimeSpan.FromSeconds(1) });
        var command = TestCommands.Make("restart-1");
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, command));

        await server.PauseAsync();
        var outcome = a.RecordOutcomeAsync(ClaimOutcome.Claimed(command), succeeded: true, CancellationToken.None).AsTask();
        await Task.Delay(TimeSpan.FromSeconds(2.5)); // the fault itself: longer than one request's timeout
        Assert.False(outcome.IsCompleted, $"the write gave up while the server was away: {outcome.Exception?.InnerException?.Message}");
        await server.KillAsync();
        await server.StartAsync();
        await outcome.WaitAsync(Bound);

        Assert.Equal(ClaimState.Completed, (await RecordAsync(command))!.State);
    }

    [Fact]
    public async Task A_record_of_the_earlier_format_keeps_its_old_rule()
    {
        ulong? sequence = 41;
        var (a, _) = Worker("a", () => sequence);
        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, TestCommands.Make("bind-first")));
        var store = await new NatsKVContext(new NatsJSContext(_admin)).GetStoreAsync(_bucket);
        await store.PutAsync("legacy-1", Encoding.UTF8.GetBytes("41/old-worker"));

        Assert.Equal(ClaimOutcomeKind.Claimed, await ClaimAsync(a, TestCommands.Make("legacy-1"))); // its own stream message again
        await store.PutAsync("legacy-2", Encoding.UTF8.GetBytes("41/old-worker"));
        sequence = 42;
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, await ClaimAsync(a, TestCommands.Make("legacy-2"))); // a second publish
    }
}
