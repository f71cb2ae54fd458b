using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Sources;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// What every command source must do (the seed's pull-model <c>CommandSource</c> v0.3: next, ack,
/// nack, the four-way outcome) and what each optional capability promises, written against
/// <see cref="ICommandSource{THandle}"/> and the capability interfaces only. A backend runs it by
/// deriving one sealed class that creates its backend over the seed (<see cref="CreateBackendAsync"/>);
/// the cases a backend cannot run (a capability it lacks, an order it does not promise) are
/// reported as skipped with the reason, so the test output shows per source what ran. Expected
/// values come from the seed the suite generates, and what the backend holds is read from its
/// own record (<see cref="CommandSourceBackend{THandle}.ReadAsync"/>).
/// </summary>
/// <typeparam name="THandle">The source's handle type.</typeparam>
public abstract class CommandSourceConformance<THandle> : ConformanceSuite<CommandSourceBackend<THandle>>
{
    // Upper bounds for what should happen at once: generous, so a loaded 2-core machine is not a failure.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(15);

    // How late a timer-driven redelivery may look early: timer and clock granularity.
    private static readonly TimeSpan ClockSlack = TimeSpan.FromMilliseconds(50);

    // For the cases about redelivery: short, so the window that proves "never redelivered" (three of it) stays short.
    private static readonly ConformanceSettings ShortDeadline = new() { RedeliveryDeadline = TimeSpan.FromSeconds(2) };

    private ConformanceSettings _settings = new();

    /// <summary>How many commands the concurrent-pull case seeds. Default 2,000.</summary>
    protected virtual int ConcurrentSeedSize => 2_000;

    /// <summary>
    /// Creates the backend holding <paramref name="seed"/> (in this order) and the source over it,
    /// set up as <paramref name="settings"/> asks where the backend has such settings.
    /// </summary>
    protected abstract ValueTask<CommandSourceBackend<THandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings);

    // ---- The contract every source keeps ----

    /// <summary>Seed: next yields Claimed(command) with the command as it was queued.</summary>
    [ConformanceFact]
    public async Task Every_seeded_command_is_delivered_as_claimed_with_its_fields()
    {
        var (backend, seed) = await SeedAsync(3);
        var delivered = new Dictionary<string, Command>();
        for (var i = 0; i < seed.Count; i++)
        {
            var pulled = await PullAsync(backend.Source, $"command {i + 1} of {seed.Count}");
            Assert.Equal(ClaimOutcomeKind.Claimed, pulled.Outcome.Kind);
            delivered.Add(IdOf(pulled), pulled.Outcome.Command!);
            await backend.Source.AckAsync(pulled.Handle, CancellationToken.None);
        }

        foreach (var expected in seed)
        {
            var actual = delivered[expected.CommandId];
            Assert.Equal(expected.ExecutionId, actual.ExecutionId);
            Assert.Equal(expected.Step, actual.Step);
            Assert.Equal(expected.ToolKind, actual.ToolKind);
            Assert.True(JsonElement.DeepEquals(expected.Input, actual.Input), $"{expected.CommandId}: input {actual.Input.GetRawText()}, seeded {expected.Input.GetRawText()}");
            Assert.Equal(expected.Attempts, actual.Attempts);
            Assert.Equal(
                expected.RenderContext.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value.GetRawText()}"),
                actual.RenderContext.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value.GetRawText()}"));
        }
    }

    /// <summary>Seed: next yields in order and each pull gets its own handle.</summary>
    [ConformanceFact]
    public async Task One_puller_gets_the_seed_in_order_with_a_handle_of_its_own_for_each()
    {
        var (backend, seed) = await SeedAsync(5);
        SkipUnless(backend.DeliversInSeedOrder, $"{SourceName(backend)} does not promise the seed's order");
        var pulls = new List<Pulled<THandle>>();
        foreach (var command in seed)
        {
            pulls.Add(await PullAsync(backend.Source, command.CommandId));
        }

        Assert.Equal(seed.Select(c => c.CommandId), pulls.Select(IdOf));
        Assert.Equal(pulls.Count, pulls.Select(p => p.Handle).Distinct().Count());
        foreach (var pulled in pulls)
        {
            await backend.Source.AckAsync(pulled.Handle, CancellationToken.None);
        }
    }

    /// <summary>The backend's own record shows the seed waiting, and empty once all is acked.</summary>
    [ConformanceFact]
    public async Task The_backend_holds_the_seed_until_it_is_acked()
    {
        var (backend, seed) = await SeedAsync(4);
        var before = await backend.ReadAsync(CancellationToken.None);
        SkipUnless(before.Pending is not null, $"{SourceName(backend)}'s backend keeps no count of what is pending");
        Assert.Equal(seed.Count, before.Pending);

        foreach (var _ in seed)
        {
            var pulled = await PullAsync(backend.Source, "a seeded command");
            await backend.Source.AckAsync(pulled.Handle, CancellationToken.None);
        }

        await AssertHeldAsync(backend, 0, "every command acked");
    }

    /// <summary>Seed: ack commits the pull; the command is never delivered again.</summary>
    [ConformanceFact]
    public async Task An_acked_command_is_gone_for_good()
    {
        var (backend, seed) = await SeedAsync(2, ShortDeadline);
        foreach (var _ in seed)
        {
            var pulled = await PullAsync(backend.Source, "a seeded command");
            await backend.Source.AckAsync(pulled.Handle, CancellationToken.None);
        }

        await AssertHeldAsync(backend, 0, "both acked");
        await AssertNotRedeliveredAsync(backend);
    }

    /// <summary>Seed: nack redelivers, with one more attempt where the source reports attempts.</summary>
    [ConformanceFact]
    public async Task A_nacked_command_is_redelivered_with_one_more_attempt()
    {
        var (backend, seed) = await SeedAsync(1);
        var first = await PullAsync(backend.Source, "the command");
        await backend.Source.NackAsync(first.Handle, CancellationToken.None);

        var again = await PullAsync(backend.Source, "the nacked command again");
        Assert.Equal(seed[0].CommandId, IdOf(again));
        Assert.NotEqual(first.Handle, again.Handle);
        AssertOneMoreAttempt(backend, first, again);

        await backend.Source.AckAsync(again.Handle, CancellationToken.None);
        await AssertHeldAsync(backend, 0, "the redelivery acked");
        await AssertDrainedAsync(backend);
    }

    /// <summary>Seed: acks and nacks in any order; only the nacked commands come back.</summary>
    [ConformanceFact]
    public async Task Of_acked_and_nacked_commands_only_the_nacked_come_back()
    {
        var (backend, seed) = await SeedAsync(3);
        var pulls = new List<Pulled<THandle>>();
        foreach (var _ in seed)
        {
            pulls.Add(await PullAsync(backend.Source, "a seeded command"));
        }

        await backend.Source.AckAsync(pulls[0].Handle, CancellationToken.None);
        await backend.Source.NackAsync(pulls[1].Handle, CancellationToken.None);
        await backend.Source.AckAsync(pulls[2].Handle, CancellationToken.None);

        var again = await PullAsync(backend.Source, "the nacked command");
        Assert.Equal(IdOf(pulls[1]), IdOf(again));
        await backend.Source.AckAsync(again.Handle, CancellationToken.None);
        await AssertHeldAsync(backend, 0, "all acked");
        await AssertDrainedAsync(backend);
    }

    /// <summary>Seed: an empty source returns none; once drained it stays drained.</summary>
    [ConformanceFact]
    public async Task An_empty_source_is_exhausted_and_stays_exhausted()
    {
        var (backend, _) = await SeedAsync(0);
        await AssertDrainedAsync(backend);
        await AssertDrainedAsync(backend);
    }

    /// <summary>A bounded source ends at the end of its input, but not while a delivery may still be nacked back.</summary>
    [ConformanceFact]
    public async Task At_the_end_of_its_input_a_source_ends_only_once_every_delivery_is_settled()
    {
        var (backend, seed) = await SeedAsync(1);
        SkipUnless(backend.EndsAtEndOfInput, $"{SourceName(backend)} ends when idle, not at the end of its input");
        var only = await PullAsync(backend.Source, "the command");

        var next = backend.Source.NextAsync(CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(next.IsCompleted, "the source must wait: the delivery still out may be nacked back");

        Assert.Equal(seed[0].CommandId, IdOf(only));
        await backend.Source.AckAsync(only.Handle, CancellationToken.None);
        Assert.Null(await next.WaitAsync(Prompt));
    }

    /// <summary>A source that ends when idle returns null once its idle timeout passes with nothing to deliver, not before.</summary>
    [ConformanceFact]
    public async Task When_idle_a_source_ends_once_its_idle_timeout_passes_with_nothing_to_deliver()
    {
        var (backend, _) = await SeedAsync(1);
        SkipUnless(!backend.EndsAtEndOfInput, $"{SourceName(backend)} ends at the end of its input, not when idle");
        // Read before the pull: the source's idle clock starts within it, so this is never later (a loaded machine cannot make it look early).
        var taken = Stopwatch.GetTimestamp();
        var only = await PullAsync(backend.Source, "the command");
        await backend.Source.AckAsync(only.Handle, CancellationToken.None);

        Assert.Null(await backend.Source.NextAsync(CancellationToken.None).AsTask().WaitAsync(_settings.IdleTimeout + Prompt));
        var idleFor = Stopwatch.GetElapsedTime(taken);
        Assert.True(idleFor >= _settings.IdleTimeout - ClockSlack, $"ended {idleFor.TotalMilliseconds:0} ms after the last pull, before the idle timeout of {_settings.IdleTimeout.TotalMilliseconds:0} ms");
        await AssertDrainedAsync(backend);
    }

    /// <summary>Seed: concurrent next calls are safe and each gets its own item; none is lost or doubled.</summary>
    [ConformanceFact]
    public async Task Concurrent_pulls_hand_each_command_to_exactly_one_caller()
    {
        const int pullers = 4;
        var (backend, seed) = await SeedAsync(ConcurrentSeedSize);
        var seen = new ConcurrentQueue<string>();
        using var start = new Barrier(pullers);
        var pulling = Enumerable.Range(0, pullers).Select(_ => Task.Run(async () =>
        {
            start.SignalAndWait(Prompt);
            while (await backend.Source.NextAsync(CancellationToken.None) is { } pulled)
            {
                seen.Enqueue(IdOf(pulled));
                await backend.Source.AckAsync(pulled.Handle, CancellationToken.None);
            }
        }));

        await Task.WhenAll(pulling).WaitAsync(TimeSpan.FromSeconds(120));

        var counts = seen.GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());
        var doubled = counts.Where(c => c.Value > 1).Select(c => $"{c.Key} x{c.Value}").ToList();
        var lost = seed.Select(c => c.CommandId).Where(id => !counts.ContainsKey(id)).ToList();
        Assert.True(doubled.Count == 0, $"delivered more than once: {string.Join(", ", doubled.Take(10))}");
        Assert.True(lost.Count == 0, $"never delivered: {string.Join(", ", lost.Take(10))}");
        Assert.Equal(seed.Count, seen.Count);
        await AssertHeldAsync(backend, 0, "every command acked");
    }

    /// <summary>A pull whose token is already cancelled throws and takes nothing: every command still reaches a later pull.</summary>
    [ConformanceFact]
    public async Task A_pull_cancelled_before_it_starts_hands_out_nothing()
    {
        var (backend, seed) = await SeedAsync(2);
        var first = await PullAsync(backend.Source, "the first command");
        // A source that fetches ahead has the second command in hand by now: the cancelled pull must not hand it out.
        await WaitUntilDeliveredToTheSourceAsync(backend, seed.Count);

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await backend.Source.NextAsync(cancelled.Token));

        var second = await PullAsync(backend.Source, "the second command, after the cancelled pull");
        Assert.Equal(seed.Select(c => c.CommandId).Order(), new[] { IdOf(first), IdOf(second) }.Order());
        await backend.Source.AckAsync(first.Handle, CancellationToken.None);
        await backend.Source.AckAsync(second.Handle, CancellationToken.None);
        await AssertHeldAsync(backend, 0, "both acked");
        await AssertDrainedAsync(backend);
    }

    /// <summary>A pull cancelled while it waits throws and takes nothing: the command that comes next goes to the next pull.</summary>
    [ConformanceFact]
    public async Task A_pull_cancelled_while_waiting_hands_out_nothing()
    {
        // Idle long enough that a source ending when idle keeps waiting while the test holds its only command.
        var (backend, seed) = await SeedAsync(1, new ConformanceSettings { IdleTimeout = TimeSpan.FromSeconds(60) });
        var held = await PullAsync(backend.Source, "the command");

        using var cancel = new CancellationTokenSource();
        var waiting = backend.Source.NextAsync(cancel.Token).AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted, $"nothing was left to pull, yet the pull returned {(waiting.IsCompletedSuccessfully ? Describe(waiting.Result) : "a fault")}");
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Prompt));

        await backend.Source.NackAsync(held.Handle, CancellationToken.None);
        var again = await PullAsync(backend.Source, "the nacked command, after the cancelled pull");
        Assert.Equal(seed[0].CommandId, IdOf(again));
        await backend.Source.AckAsync(again.Handle, CancellationToken.None);
        await AssertHeldAsync(backend, 0, "the command acked");
    }

    // ---- Capabilities, where the source has them ----

    /// <summary><see cref="ISupportsDelayedNack{THandle}"/>: the command comes back, but no sooner than the delay.</summary>
    [ConformanceFact]
    public async Task A_delayed_nack_redelivers_no_sooner_than_its_delay()
    {
        var delay = TimeSpan.FromSeconds(1.5);
        var (backend, seed) = await SeedAsync(1);
        var delayed = Require(backend, SourceCapabilities<THandle>.Discover(backend.Source).DelayedNack, $"ISupportsDelayedNack<{typeof(THandle).Name}>");
        var first = await PullAsync(backend.Source, "the command");

        var nackedAt = Stopwatch.GetTimestamp();
        await delayed.NackAsync(first.Handle, delay, CancellationToken.None);
        var again = await PullAsync(backend.Source, "the command after its delay", delay + Prompt);
        var after = Stopwatch.GetElapsedTime(nackedAt);

        Assert.Equal(seed[0].CommandId, IdOf(again));
        Assert.True(after >= delay - ClockSlack, $"redelivered {after.TotalMilliseconds:0} ms after a nack delayed {delay.TotalMilliseconds:0} ms");
        AssertOneMoreAttempt(backend, first, again);
        await backend.Source.AckAsync(again.Handle, CancellationToken.None);
        await AssertHeldAsync(backend, 0, "the redelivery acked");
        await AssertDrainedAsync(backend);
    }

    /// <summary><see cref="ISupportsTerminate{THandle}"/>: a terminated command never comes back, and the backend records it as a dead letter where it keeps such a record.</summary>
    [ConformanceFact]
    public async Task A_terminated_command_is_never_redelivered_and_is_recorded_as_a_dead_letter()
    {
        const string reason = "poison: the conformance suite gave up on it";
        var (backend, seed) = await SeedAsync(2, ShortDeadline);
        var terminate = Require(backend, SourceCapabilities<THandle>.Discover(backend.Source).Terminate, $"ISupportsTerminate<{typeof(THandle).Name}>");
        var poison = await PullAsync(backend.Source, "the first command");
        await terminate.TerminateAsync(poison.Handle, reason, CancellationToken.None);
        var healthy = await PullAsync(backend.Source, "the second command");
        await backend.Source.AckAsync(healthy.Handle, CancellationToken.None);

        await AssertHeldAsync(backend, 0, "one terminated, one acked");
        await AssertNotRedeliveredAsync(backend);
        var record = await backend.ReadAsync(CancellationToken.None);
        if (record.DeadLetters is not null)
        {
            await Eventually.WaitForAsync(
                async () => (await backend.ReadAsync(CancellationToken.None)).DeadLetters!.Count > 0,
                Prompt,
                "the dead letter recorded");
            var dead = Assert.Single((await backend.ReadAsync(CancellationToken.None)).DeadLetters!);
            Assert.Equal(IdOf(poison), dead.CommandId);
            Assert.Contains(dead.CommandId, seed.Select(c => c.CommandId));
            if (dead.Reason is not null)
            {
                Assert.Equal(reason, dead.Reason);
            }
        }
    }

    /// <summary><see cref="ISupportsKeepAlive{THandle}"/>: renewing on the source's interval holds a command well past its redelivery deadline.</summary>
    [ConformanceFact]
    public async Task Keep_alive_holds_a_command_past_its_redelivery_deadline()
    {
        var (backend, seed) = await SeedAsync(1, ShortDeadline);
        var keepAlive = Require(backend, SourceCapabilities<THandle>.Discover(backend.Source).KeepAlive, $"ISupportsKeepAlive<{typeof(THandle).Name}>");
        var deadline = backend.RedeliveryDeadline ?? throw new InvalidOperationException($"{SourceName(backend)} renews deliveries, so its backend must name its redelivery deadline.");
        Assert.True(keepAlive.KeepAliveInterval < deadline, $"the keep-alive interval {keepAlive.KeepAliveInterval} must be below the deadline {deadline}");
        var held = await PullAsync(backend.Source, "the command");

        var hold = Stopwatch.StartNew();
        var lastRenewal = TimeSpan.Zero;
        var longestGap = TimeSpan.Zero;
        while (hold.Elapsed < deadline * 3)
        {
            await keepAlive.KeepAliveAsync(held.Handle, CancellationToken.None);
            longestGap = TimeSpan.FromTicks(Math.Max(longestGap.Ticks, (hold.Elapsed - lastRenewal).Ticks));
            lastRenewal = hold.Elapsed;
            await Task.Delay(keepAlive.KeepAliveInterval);
        }

        await backend.Source.AckAsync(held.Handle, CancellationToken.None);
        Assert.Equal(seed[0].CommandId, IdOf(held));
        // Had a renewal not taken, the command would have been redelivered by now, and would be handed out here.
        try
        {
            await AssertHeldAsync(backend, 0, "the renewed command acked");
            await AssertDrainedAsync(backend);
        }
        catch (Xunit.Sdk.XunitException ex)
        {
            // Renewals that stalled past the deadline (a machine too loaded to run the loop) are not the source's fault: say which it was.
            throw new Xunit.Sdk.XunitException($"{ex.Message} (longest gap between renewals {longestGap.TotalMilliseconds:0} ms, deadline {deadline.TotalMilliseconds:0} ms)");
        }
    }

    /// <summary>The control for keep-alive: a command held without renewal comes back after the deadline (so the case above proves the renewals).</summary>
    [ConformanceFact]
    public async Task Without_keep_alive_a_held_command_is_redelivered_after_its_deadline()
    {
        var (backend, seed) = await SeedAsync(1, ShortDeadline with { IdleTimeout = TimeSpan.FromSeconds(60) });
        Require(backend, SourceCapabilities<THandle>.Discover(backend.Source).KeepAlive, $"ISupportsKeepAlive<{typeof(THandle).Name}>");
        var deadline = backend.RedeliveryDeadline ?? throw new InvalidOperationException($"{SourceName(backend)} renews deliveries, so its backend must name its redelivery deadline.");
        var held = await PullAsync(backend.Source, "the command");

        var again = await PullAsync(backend.Source, "the unrenewed command again", deadline * 3 + Prompt);
        Assert.Equal(seed[0].CommandId, IdOf(again));
        AssertOneMoreAttempt(backend, held, again);

        await backend.Source.AckAsync(again.Handle, CancellationToken.None);
        await backend.Source.AckAsync(held.Handle, CancellationToken.None); // every handle settled once, the stale one too
        await AssertHeldAsync(backend, 0, "the redelivery acked");
    }

    /// <summary>
    /// <see cref="ISupportsStopPulling"/>: after the stop, pulls return null, what was fetched ahead
    /// goes back to the backend for the rest of the pool (well before any redelivery deadline),
    /// and a delivery already handed out still settles.
    /// </summary>
    [ConformanceFact]
    public async Task Stop_pulling_ends_pulls_and_gives_back_what_was_fetched_ahead()
    {
        // A deadline far beyond the bounds below: what the other worker gets was given back, not expired.
        var (backend, seed) = await SeedAsync(10, new ConformanceSettings { RedeliveryDeadline = TimeSpan.FromSeconds(90) });
        var stop = Require(backend, SourceCapabilities<THandle>.Discover(backend.Source).StopPulling, "ISupportsStopPulling");
        var held = await PullAsync(backend.Source, "the first command");
        await WaitUntilDeliveredToTheSourceAsync(backend, seed.Count);

        await stop.StopPullingAsync().WaitAsync(Prompt);
        Assert.Null(await backend.Source.NextAsync(CancellationToken.None).AsTask().WaitAsync(Prompt));
        await backend.Source.AckAsync(held.Handle, CancellationToken.None);

        var other = await backend.OpenAnotherSourceAsync(CancellationToken.None);
        var given = new List<string>();
        var bound = Stopwatch.StartNew();
        while (await other.NextAsync(CancellationToken.None).AsTask().WaitAsync(Prompt + _settings.IdleTimeout) is { } pulled)
        {
            given.Add(IdOf(pulled));
            await other.AckAsync(pulled.Handle, CancellationToken.None);
        }

        Assert.Equal(seed.Select(c => c.CommandId).Where(id => id != IdOf(held)).Order(), given.Order());
        Assert.True(bound.Elapsed < TimeSpan.FromSeconds(60), $"the other worker took {bound.Elapsed.TotalSeconds:0.#} s: given back, they should come at once");
        await AssertHeldAsync(backend, 0, "every command acked");
    }

    // ---- Helpers ----

    /// <summary>Skips the running case, with <paramref name="reason"/> in the test output, unless <paramref name="condition"/> holds.</summary>
    protected static void SkipUnless(bool condition, string reason)
    {
        if (!condition)
        {
            throw new ConformanceSkipException(reason);
        }
    }

    private static T Require<T>(CommandSourceBackend<THandle> backend, T? capability, string name)
        where T : class
    {
        SkipUnless(capability is not null, $"{SourceName(backend)} does not implement {name}");
        return capability!;
    }

    private static string SourceName(CommandSourceBackend<THandle> backend) => backend.Source.GetType().Name;

    private async Task<(CommandSourceBackend<THandle> Backend, IReadOnlyList<Command> Seed)> SeedAsync(int count, ConformanceSettings? settings = null)
    {
        _settings = settings ?? new ConformanceSettings();
        var seed = Seed(count);
        var backend = await CreateBackendAsync(seed, _settings);
        Track(backend);
        return (backend, seed);
    }

    /// <summary>Commands in the wire shape, each field telling them apart; ids no other test uses.</summary>
    private static List<Command> Seed(int count)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        return
        [
            .. Enumerable.Range(0, count).Select(i => new Command
            {
                CommandId = $"conf-{run}-{i}",
                ExecutionId = 1_000 + i,
                Step = $"step-{i}",
                ToolKind = i % 2 == 0 ? "noop" : "echo",
                Input = JsonSerializer.SerializeToElement(new { n = i, text = $"input {i}" }),
                RenderContext = i % 3 == 0 ? new Dictionary<string, JsonElement> { ["workload.region"] = JsonSerializer.SerializeToElement("us-east-1") } : new Dictionary<string, JsonElement>(),
            }),
        ];
    }

    private static string IdOf(Pulled<THandle> pulled) =>
        pulled.Outcome.Command?.CommandId ?? throw new Xunit.Sdk.XunitException($"a pulled item carries no command: {pulled.Outcome}");

    private static string Describe(Pulled<THandle>? pulled) => pulled is { } p ? $"{p.Outcome.Kind} {p.Outcome.Command?.CommandId}" : "null (ended)";

    private static async Task<Pulled<THandle>> PullAsync(ICommandSource<THandle> source, string what, TimeSpan? bound = null)
    {
        Pulled<THandle>? pulled;
        try
        {
            pulled = await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(bound ?? Prompt);
        }
        catch (TimeoutException)
        {
            throw new Xunit.Sdk.XunitException($"{what}: no pull returned within {(bound ?? Prompt).TotalSeconds:0.#} s");
        }

        return pulled ?? throw new Xunit.Sdk.XunitException($"{what}: the source ended instead");
    }

    private static void AssertOneMoreAttempt(CommandSourceBackend<THandle> backend, Pulled<THandle> first, Pulled<THandle> again)
    {
        if (backend.AttemptOf(first) is { } before)
        {
            // The message ids say which it was when this fails: the same message not counted again, or another copy of the command.
            var ids = backend.Source is ISupportsTelemetry<THandle> telemetry
                ? $" (message {telemetry.MessageIdOf(first.Handle)}, then {telemetry.MessageIdOf(again.Handle)})"
                : string.Empty;
            Assert.True(before + 1 == backend.AttemptOf(again), $"attempt {before}, then {backend.AttemptOf(again)}: expected {before + 1}{ids}");
        }
    }

    /// <summary>Where the backend counts what awaits a settle, waits until it has delivered <paramref name="count"/> commands to the source (fetched ahead).</summary>
    private static async Task WaitUntilDeliveredToTheSourceAsync(CommandSourceBackend<THandle> backend, int count)
    {
        if ((await backend.ReadAsync(CancellationToken.None)).AwaitingSettle is null)
        {
            return;
        }

        BackendRecord? last = null;
        await Eventually.WaitForAsync(
            async () => (last = await backend.ReadAsync(CancellationToken.None)).AwaitingSettle == count,
            Prompt,
            $"{count} commands delivered to the source",
            () => $"{last}");
    }

    /// <summary>Where the backend counts what it holds, waits until it holds <paramref name="expected"/>.</summary>
    private static async Task AssertHeldAsync(CommandSourceBackend<THandle> backend, long expected, string what)
    {
        var last = await backend.ReadAsync(CancellationToken.None);
        if (last.Held is null)
        {
            return;
        }

        await Eventually.WaitForAsync(
            async () => (last = await backend.ReadAsync(CancellationToken.None)).Held == expected,
            Prompt,
            $"{what}: the backend holds {expected}",
            () => $"{last}");
    }

    /// <summary>The next pull returns null: nothing is left or came back.</summary>
    private async Task AssertDrainedAsync(CommandSourceBackend<THandle> backend)
    {
        var bound = backend.EndsAtEndOfInput ? Prompt : _settings.IdleTimeout + Prompt;
        Pulled<THandle>? next;
        try
        {
            next = await backend.Source.NextAsync(CancellationToken.None).AsTask().WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            // A source at the end of its input waits while a delivery is out: a settle it missed keeps it waiting.
            throw new Xunit.Sdk.XunitException($"the source should have nothing left, and neither ended nor handed anything out within {bound.TotalSeconds:0.#} s (a settle it did not take?)");
        }

        if (next is { } extra)
        {
            await backend.Source.NackAsync(extra.Handle, CancellationToken.None);
            Assert.Fail($"the source should have nothing left, and handed out {Describe(extra)} (attempt {backend.AttemptOf(extra)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"})");
        }
    }

    /// <summary>
    /// Nothing comes back over a window three times the backend's redelivery deadline (a settle the
    /// backend missed would be redelivered in it), then the source is drained.
    /// </summary>
    private async Task AssertNotRedeliveredAsync(CommandSourceBackend<THandle> backend)
    {
        if (backend.RedeliveryDeadline is { } deadline)
        {
            await Task.Delay(deadline * 3);
        }

        await AssertDrainedAsync(backend);
    }
}
