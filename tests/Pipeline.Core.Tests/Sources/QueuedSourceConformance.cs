using Microsoft.Extensions.Time.Testing;
using Pipeline.Commands;
using Pipeline.Sources;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Sources;

/// <summary>What every embedded source must do; each kind runs this suite.</summary>
public abstract class QueuedSourceConformance : IDisposable
{
    private readonly List<IAsyncDisposable> _disposables = [];

    /// <summary>A completed source holding <paramref name="commands"/> in order.</summary>
    private protected abstract QueuedCommandSource Create(IReadOnlyList<Command> commands, TimeProvider? time = null);

    private protected QueuedCommandSource Track(QueuedCommandSource source)
    {
        if (source is IAsyncDisposable disposable)
        {
            _disposables.Add(disposable);
        }

        return source;
    }

    public void Dispose()
    {
        foreach (var disposable in _disposables)
        {
            disposable.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static List<Command> Commands(int count) =>
        [.. Enumerable.Range(0, count).Select(i => TestCommands.Make($"c{i}"))];

    // Seed: empty_source_returns_none.
    [Fact]
    public async Task Empty_source_returns_null()
    {
        var source = Create([]);
        Assert.Null(await source.NextAsync(CancellationToken.None));
    }

    // Seed: next_yields_in_order_and_increments_handles.
    [Fact]
    public async Task Next_yields_in_order_with_distinct_handles()
    {
        var source = Create(Commands(2));
        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        var second = (await source.NextAsync(CancellationToken.None))!.Value;

        Assert.Equal(ClaimOutcomeKind.Claimed, first.Outcome.Kind);
        Assert.Equal("c0", first.Outcome.Command!.CommandId);
        Assert.Equal("c1", second.Outcome.Command!.CommandId);
        Assert.NotEqual(first.Handle.DeliveryId, second.Handle.DeliveryId);
    }

    // Seed: ack_and_nack_recorded_in_order.
    [Fact]
    public async Task Acks_and_nacks_are_counted()
    {
        var source = Create(Commands(3));
        var a = (await source.NextAsync(CancellationToken.None))!.Value;
        var b = (await source.NextAsync(CancellationToken.None))!.Value;
        var c = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.AckAsync(a.Handle, CancellationToken.None);
        await source.NackAsync(b.Handle, CancellationToken.None);
        await source.AckAsync(c.Handle, CancellationToken.None);

        Assert.Equal(2, source.Acked);
        Assert.Equal(1, source.Nacked);
    }

    [Fact]
    public async Task A_nacked_item_comes_back_with_one_more_attempt()
    {
        var source = Create(Commands(1));
        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.NackAsync(first.Handle, CancellationToken.None);
        var again = (await source.NextAsync(CancellationToken.None))!.Value;

        Assert.Equal("c0", again.Outcome.Command!.CommandId);
        Assert.Equal(1, again.Outcome.Command.Attempts);
        Assert.NotEqual(first.Handle.DeliveryId, again.Handle.DeliveryId);

        await source.AckAsync(again.Handle, CancellationToken.None);
        Assert.Null(await source.NextAsync(CancellationToken.None));
    }

    [Fact]
    public async Task The_source_ends_only_once_every_delivery_is_settled()
    {
        var source = Create(Commands(1));
        var only = (await source.NextAsync(CancellationToken.None))!.Value;

        var next = source.NextAsync(CancellationToken.None).AsTask();
        await Task.Yield();
        Assert.False(next.IsCompleted, "the source must wait: the outstanding delivery may still be nacked");

        await source.AckAsync(only.Handle, CancellationToken.None);
        Assert.Null(await next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_terminated_item_becomes_a_dead_letter_and_is_not_redelivered()
    {
        var source = Create(Commands(1));
        var only = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.TerminateAsync(only.Handle, "poison", CancellationToken.None);

        Assert.Null(await source.NextAsync(CancellationToken.None));
        var dead = Assert.Single(source.DeadLetters);
        Assert.Equal("poison", dead.Reason);
        Assert.Equal("c0", dead.Outcome.Command!.CommandId);
    }

    [Fact]
    public async Task A_delayed_nack_comes_back_only_after_the_delay()
    {
        var time = new FakeTimeProvider();
        var source = Create(Commands(1), time);
        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.NackAsync(first.Handle, TimeSpan.FromSeconds(5), CancellationToken.None);

        var next = source.NextAsync(CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(4));
        await Task.Yield();
        Assert.False(next.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));
        var again = (await next.WaitAsync(TimeSpan.FromSeconds(10)))!.Value;
        Assert.Equal(1, again.Outcome.Command!.Attempts);
    }

    [Fact]
    public async Task Concurrent_pulls_deliver_each_item_exactly_once()
    {
        const int count = 5_000;
        var source = Create(Commands(count));
        var seen = new System.Collections.Concurrent.ConcurrentBag<string>();
        var pullers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (await source.NextAsync(CancellationToken.None) is { } pulled)
            {
                seen.Add(pulled.Outcome.Command!.CommandId);
                await source.AckAsync(pulled.Handle, CancellationToken.None);
            }
        }));
        await Task.WhenAll(pullers).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(count, seen.Count);
        Assert.Equal(count, seen.Distinct().Count());
        Assert.Equal(count, source.Acked);
    }

    [Fact]
    public async Task A_cancelled_pull_hands_out_nothing()
    {
        var source = Create(Commands(1));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await source.NextAsync(cts.Token));

        var only = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.AckAsync(only.Handle, CancellationToken.None);
        Assert.Null(await source.NextAsync(CancellationToken.None));
    }
}

public sealed class InMemorySourceConformanceTests : QueuedSourceConformance
{
    private protected override QueuedCommandSource Create(IReadOnlyList<Command> commands, TimeProvider? time = null) =>
        InMemoryCommandSource.From(commands, time);

    [Fact]
    public async Task Other_outcomes_are_delivered_as_given()
    {
        // Seed: already_claimed_outcome_carries_handle, retry_later_outcome_carries_error_message.
        var source = new InMemoryCommandSource();
        source.Enqueue(ClaimOutcome.AlreadyClaimed());
        source.Enqueue(ClaimOutcome.RetryLater("overload"));
        source.Complete();

        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, first.Outcome.Kind);
        await source.AckAsync(first.Handle, CancellationToken.None);
        Assert.Equal(1, source.Acked);

        var second = (await source.NextAsync(CancellationToken.None))!.Value;
        Assert.Equal("overload", second.Outcome.Reason);
    }

    [Fact]
    public void Adding_after_complete_is_refused()
    {
        var source = InMemoryCommandSource.From([]);
        Assert.Throws<InvalidOperationException>(() => source.Enqueue(TestCommands.Make("late")));
    }
}

public sealed class JsonLinesFileSourceConformanceTests : QueuedSourceConformance
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-source-").FullName;

    private protected override QueuedCommandSource Create(IReadOnlyList<Command> commands, TimeProvider? time = null)
    {
        var path = Path.Combine(_directory, $"{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, commands.Select(c => c.ToJson()));
        return Track(JsonLinesFileSource.Open(path, time is null ? null : new JsonLinesSourceOptions { TimeProvider = time }));
    }

    [Fact]
    public async Task A_malformed_line_fails_naming_its_line_and_the_run_goes_on()
    {
        var path = Path.Combine(_directory, "mixed.jsonl");
        File.WriteAllLines(path,
        [
            TestCommands.Make("ok-1").ToJson(),
            string.Empty,
            "{\"command_id\": \"broken\"",
            TestCommands.Make("ok-2").ToJson(),
        ]);
        var source = (JsonLinesFileSource)Track(JsonLinesFileSource.Open(path));

        var outcomes = new List<ClaimOutcome>();
        while (await source.NextAsync(CancellationToken.None) is { } pulled)
        {
            outcomes.Add(pulled.Outcome);
            await source.AckAsync(pulled.Handle, CancellationToken.None);
        }

        Assert.Equal(3, outcomes.Count);
        Assert.Equal("ok-1", outcomes[0].Command!.CommandId);
        Assert.Equal(ClaimOutcomeKind.Failed, outcomes[1].Kind);
        Assert.Contains("mixed.jsonl line 3", outcomes[1].Reason, StringComparison.Ordinal);
        Assert.Equal("ok-2", outcomes[2].Command!.CommandId);
    }

    [Fact]
    public void A_missing_file_is_a_clear_error()
    {
        var error = Assert.Throws<FileNotFoundException>(() => JsonLinesFileSource.Open(Path.Combine(_directory, "absent.jsonl")));
        Assert.Contains("absent.jsonl", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>The same source over a stream handing out a few bytes per read, so lines straddle reads.</summary>
public sealed class JsonLinesStreamSourceConformanceTests : QueuedSourceConformance
{
    private protected override QueuedCommandSource Create(IReadOnlyList<Command> commands, TimeProvider? time = null)
    {
        var content = System.Text.Encoding.UTF8.GetBytes(string.Concat(commands.Select(c => c.ToJson() + "\r\n")));
        var options = new JsonLinesSourceOptions { TimeProvider = time ?? TimeProvider.System };
        return Track(JsonLinesFileSource.Open(Pipeline.Tests.Sources.Support.GeneratedStream.Of(content, chunk: 5), "stream", options));
    }
}
