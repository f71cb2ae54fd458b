using Microsoft.Extensions.Time.Testing;
using Pipeline.Commands;
using Pipeline.Sources;
using Pipeline.Testing.Conformance;
using Pipeline.Tests.Sources.Support;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Sources;

/// <summary>The in-memory source runs the conformance suite; below it, what only this source does.</summary>
public sealed class InMemoryCommandSourceConformanceTests : CommandSourceConformance<DeliveryHandle>
{
    protected override ValueTask<CommandSourceBackend<DeliveryHandle>> CreateBackendAsync(IReadOnlyList<Command> seed, ConformanceSettings settings) =>
        new(new QueuedSourceBackend(InMemoryCommandSource.From(seed)));

    [Fact]
    public async Task Other_outcomes_are_delivered_as_given()
    {
        // Seed: already_claimed_outcome_carries_handle, retry_later_outcome_carries_error_message.
        var source = new InMemoryCommandSource();
        source.Enqueue(ClaimOutcome.AlreadyClaimed());
        source.Enqueue(ClaimOutcome.RetryLater("overload"));
        source.Enqueue(ClaimOutcome.Failed("malformed payload"));
        source.Complete();

        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, first.Outcome.Kind);
        await source.AckAsync(first.Handle, CancellationToken.None);
        Assert.Equal(1, source.Acked);

        var second = (await source.NextAsync(CancellationToken.None))!.Value;
        Assert.Equal(ClaimOutcomeKind.RetryLater, second.Outcome.Kind);
        Assert.Equal("overload", second.Outcome.Reason);

        var third = (await source.NextAsync(CancellationToken.None))!.Value;
        Assert.Equal(ClaimOutcomeKind.Failed, third.Outcome.Kind);
        Assert.Equal("malformed payload", third.Outcome.Reason);
    }

    [Fact]
    public void Adding_after_complete_is_refused()
    {
        var source = InMemoryCommandSource.From([]);
        Assert.Throws<InvalidOperationException>(() => source.Enqueue(TestCommands.Make("late")));
    }

    [Fact]
    public async Task Acks_nacks_and_terminates_are_counted()
    {
        // Seed: ack_and_nack_recorded_in_order (the source's counters are its record of settles).
        var source = InMemoryCommandSource.From([TestCommands.Make("a"), TestCommands.Make("b"), TestCommands.Make("c"), TestCommands.Make("d")]);
        var a = (await source.NextAsync(CancellationToken.None))!.Value;
        var b = (await source.NextAsync(CancellationToken.None))!.Value;
        var c = (await source.NextAsync(CancellationToken.None))!.Value;
        var d = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.AckAsync(a.Handle, CancellationToken.None);
        await source.NackAsync(b.Handle, CancellationToken.None);
        await source.AckAsync(c.Handle, CancellationToken.None);
        await source.TerminateAsync(d.Handle, "poison", CancellationToken.None);

        Assert.Equal(2, source.Acked);
        Assert.Equal(1, source.Nacked);
        Assert.Equal(1, source.Terminated);
    }

    [Fact]
    public async Task A_delayed_nack_runs_on_the_given_clock()
    {
        var time = new FakeTimeProvider();
        var source = InMemoryCommandSource.From([TestCommands.Make("c0")], time);
        await DelayedNackClock.AssertRedeliveredOnItsClockAsync(source, time);
    }
}

/// <summary>
/// A <see cref="QueuedCommandSource"/> as a conformance backend: the source is its own store, so
/// its ready queue and dead-letter list are the backend's record. It ends at the end of its input,
/// never redelivers by itself, and reports <c>attempts</c>.
/// </summary>
internal sealed class QueuedSourceBackend(QueuedCommandSource source) : CommandSourceBackend<DeliveryHandle>
{
    public override ICommandSource<DeliveryHandle> Source => source;

    public override bool EndsAtEndOfInput => true;

    public override TimeSpan? RedeliveryDeadline => null;

    /// <summary>The ready queue counts only commands read so far, which for a source reading its input as it goes is not what it holds.</summary>
    public bool CountsPending { get; init; } = true;

    public override long? AttemptOf(Pulled<DeliveryHandle> pulled) => pulled.Outcome.Command?.Attempts;

    public override ValueTask<BackendRecord> ReadAsync(CancellationToken cancellationToken) => new(new BackendRecord(
        CountsPending ? source.Ready : null,
        AwaitingSettle: null,
        [.. source.DeadLetters.Select(d => new DeadLetterRecord(d.Outcome.Command?.CommandId ?? "(no command)", d.Reason))]));

    public override async ValueTask DisposeAsync()
    {
        if (source is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
    }
}
