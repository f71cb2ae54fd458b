using System.Text.Json;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Events;
using Pipeline.Nats.Events;
using Pipeline.Nats.Tests.Support;

namespace Pipeline.Nats.Tests.Events;

[Collection(NatsCollection.Name)]
public sealed class NatsEventSinkTests(NatsServerFixture server) : IAsyncLifetime
{
    private readonly string _stream = NatsServerFixture.UniqueName("events");
    private NatsConnection _connection = null!;

    public async Task InitializeAsync()
    {
        await server.StartAsync();
        _connection = server.Connect("events");
    }

    public async Task DisposeAsync() => await _connection.DisposeAsync();

    private static PipelineEvent Event(long execution, string id) => new()
    {
        EventType = EventTypes.CommandCompleted,
        Status = EventStatus.Completed,
        CreatedAt = DateTimeOffset.UnixEpoch.AddSeconds(execution),
        ExecutionId = execution,
        CommandId = id,
    };

    [Fact]
    public async Task Events_go_to_a_subject_per_execution_in_the_created_stream()
    {
        using var sink = new NatsEventSink(_connection, new NatsEventSinkOptions { Stream = _stream, Subjects = [$"{_stream}.>"], SubjectTemplate = $"{_stream}.{{execution_id}}.events" });
        await sink.WriteAsync(new[] { Event(1, "a"), Event(2, "b"), Event(1, "c") }, CancellationToken.None);

        var js = new NatsJSContext(_connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig("reader") { FilterSubject = $"{_stream}.1.events" });
        var ids = new List<string>();
        await foreach (var msg in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 10, Expires = TimeSpan.FromSeconds(1) }))
        {
            ids.Add(JsonDocument.Parse(msg.Data!).RootElement.GetProperty("command_id").GetString()!);
        }

        Assert.Equal(["a", "c"], ids);
        Assert.Equal(3, sink.Published);
    }

    [Fact]
    public async Task A_publish_the_stream_refuses_fails_the_batch()
    {
        // A stream that takes one message and refuses the rest: the refusal comes back in the ack, not as an exception.
        var js = new NatsJSContext(_connection);
        await js.CreateStreamAsync(new StreamConfig(_stream, [$"{_stream}.>"]) { MaxMsgs = 1, Discard = StreamConfigDiscard.New });
        using var sink = new NatsEventSink(_connection, new NatsEventSinkOptions { Stream = _stream, SubjectTemplate = $"{_stream}.{{execution_id}}" });

        var ex = await Assert.ThrowsAsync<IOException>(async () => await sink.WriteAsync(new[] { Event(1, "a"), Event(1, "b") }, CancellationToken.None));
        Assert.Contains("1 of 2", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("events.{execution_id}.>")]
    [InlineData("events..{execution_id}")]
    [InlineData("events {execution_id}")]
    public void A_template_that_is_not_a_subject_is_refused(string template) =>
        Assert.Throws<ArgumentException>(() => new NatsEventSinkOptions { SubjectTemplate = template }.Validate());
}
