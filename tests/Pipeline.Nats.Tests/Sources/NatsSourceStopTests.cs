using Pipeline.Nats.Sources;
using Pipeline.Nats.Tests.Support;

namespace Pipeline.Nats.Tests.Review;

/// <summary>review9: a stop of the JetStream source gives back what it holds, and what comes later goes to the rest of the pool.</summary>
[Collection(NatsCollection.Name)]
public sealed class Review9SourceTests(NatsServerFixture server) : IAsyncLifetime
{
    private readonly string _stream = NatsServerFixture.UniqueName("review9");

    public async Task InitializeAsync()
    {
        await server.StartAsync();
        await using var setup = server.Connect("setup");
        await Harness.CreateStreamAsync(setup, _stream, $"{_stream}.>");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task After_a_stop_the_buffer_and_later_messages_go_to_another_worker_before_the_ack_wait()
    {
        var options = new NatsSourceOptions
        {
            Stream = _stream,
            Consumer = "workers",
            FetchBatch = 8,
            AckWait = TimeSpan.FromSeconds(30),
            FetchExpires = TimeSpan.FromSeconds(20),
        };
        await using var publisher = server.Connect("publisher");
        await Harness.PublishAsync(publisher, $"{_stream}.c", Enumerable.Range(0, 8).Select(i => Harness.Make($"before-{i}")));

        await using var first = server.Connect("first");
        await using var stopping = new NatsCommandSource(first, options);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var taken = await stopping.NextAsync(bound.Token);
        Assert.NotNull(taken);
        await Harness.EventuallyAsync(() => Task.FromResult(stopping.Fetched >= 8), TimeSpan.FromSeconds(10), "eight fetched");
        await stopping.AckAsync(taken!.Value.Handle, bound.Token);
        await Task.Delay(300); // the refill's pull request is open on the server

        var stop = stopping.StopFetchingAsync();
        Assert.True(await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(3))) == stop, "StopFetchingAsync ended within 3 s");
        Assert.Null(await stopping.NextAsync(bound.Token));

        await Task.Delay(200);
        await Harness.PublishAsync(publisher, $"{_stream}.c", Enumerable.Range(0, 4).Select(i => Harness.Make($"after-{i}")));

        await using var second = server.Connect("second");
        await using var other = new NatsCommandSource(second, options);
        var got = new HashSet<string>();
        using var soon = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        try
        {
            while (got.Count < 11)
            {
                var next = await other.NextAsync(soon.Token);
                got.Add(next!.Value.Outcome.Command!.CommandId);
                await other.AckAsync(next.Value.Handle, soon.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }

        Assert.Equal(11, got.Count); // 7 given back + 4 published after the stop, none held for the 30 s ack wait
    }
}
