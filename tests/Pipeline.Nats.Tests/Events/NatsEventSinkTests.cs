using NATS.Client.JetStream.Models;
using Pipeline.Nats.Events;

namespace Pipeline.Nats.Tests.Events;

[Collection(NatsCollection.Name)]
public sealed class NatsEventSinkTests(NatsServerFixture server) : StreamTest(server, "events", createStream: false)
{
    private NatsEventSinkOptions Options() => new() { Stream = Stream, Subjects = [$"{Stream}.>"], SubjectTemplate = $"{Stream}.{{execution_id}}" };

    private async Task<List<string>> ReadCommandIdsAsync(string subject) =>
        [.. (await ReadAsync(Connection, subject)).Select(e => e.Body.GetProperty("command_id").GetString()!)];

    /// <summary>Every message on <paramref name="subject"/>, in stream order, with its Nats-Msg-Id.</summary>
    private async Task<List<(JsonElement Body, string? MsgId)>> ReadAsync(NatsConnection connection, string subject)
    {
        var js = new NatsJSContext(connection);
        // FilterSubject: nats-server 2.9 ignores the ordered consumer's list of filters.
        var consumer = await js.CreateOrUpdateConsumerAsync(Stream, new ConsumerConfig(NatsServerFixture.UniqueName("reader")) { FilterSubject = subject, AckPolicy = ConsumerConfigAckPolicy.None });
        var read = new List<(JsonElement, string?)>();
        await foreach (var msg in consumer.FetchAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 100, Expires = TimeSpan.FromSeconds(1) }))
        {
            read.Add((JsonDocument.Parse(msg.Data!).RootElement.Clone(), msg.Headers?["Nats-Msg-Id"].ToString()));
        }

        return read;
    }

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
        using var sink = new NatsEventSink(Connection, new NatsEventSinkOptions { Stream = Stream, Subjects = [$"{Stream}.>"], SubjectTemplate = $"{Stream}.{{execution_id}}.events" });
        await sink.WriteAsync(new[] { Event(1, "a"), Event(2, "b"), Event(1, "c") }, CancellationToken.None);

        var js = new NatsJSContext(Connection);
        var consumer = await js.CreateOrUpdateConsumerAsync(Stream, new ConsumerConfig("reader") { FilterSubject = $"{Stream}.1.events" });
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
        var js = new NatsJSContext(Connection);
        await js.CreateStreamAsync(new StreamConfig(Stream, [$"{Stream}.>"]) { MaxMsgs = 1, Discard = StreamConfigDiscard.New });
        using var sink = new NatsEventSink(Connection, new NatsEventSinkOptions { Stream = Stream, SubjectTemplate = $"{Stream}.{{execution_id}}" });

        var ex = await Assert.ThrowsAsync<IOException>(async () => await sink.WriteAsync(new[] { Event(1, "a"), Event(1, "b") }, CancellationToken.None));
        Assert.Contains("1 of 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_publish_acknowledged_as_a_duplicate_counts_as_stored_and_the_stream_keeps_one_copy()
    {
        using var sink = new NatsEventSink(Connection, Options());
        var batch = new[] { Event(1, "a") };
        await sink.WriteAsync(batch, CancellationToken.None);

        // The same event again, as the Emit block retries a batch whose ack was lost: the stream
        // answers "duplicate" (it holds the Nats-Msg-Id already), which is success for the sink.
        await sink.WriteAsync(batch, CancellationToken.None);

        var stream = await new NatsJSContext(Connection).GetStreamAsync(Stream);
        Assert.Equal(1L, stream.Info.State.Messages);
        Assert.Equal(2, sink.Published);
        Assert.Equal(1, sink.Duplicates);
    }

    [Fact]
    public async Task A_batch_retried_after_a_partial_failure_succeeds_and_stores_each_event_once()
    {
        // A stream that takes one message and refuses the rest: the first write stores a, fails b.
        var js = new NatsJSContext(Connection);
        var config = new StreamConfig(Stream, [$"{Stream}.>"]) { MaxMsgs = 1, Discard = StreamConfigDiscard.New };
        await js.CreateStreamAsync(config);
        using var sink = new NatsEventSink(Connection, Options());
        var batch = new[] { Event(1, "a"), Event(1, "b") };
        await Assert.ThrowsAsync<IOException>(async () => await sink.WriteAsync(batch, CancellationToken.None));

        // The cause goes away; the retry of the same batch publishes b only: the sink saw a stored
        // (were a published again, the stream would answer "duplicate", which is stored too).
        await js.UpdateStreamAsync(config with { MaxMsgs = -1 });
        await sink.WriteAsync(batch, CancellationToken.None);

        Assert.Equal(["a", "b"], await ReadCommandIdsAsync($"{Stream}.1"));
        Assert.Equal(2, sink.Published);
        Assert.Equal(0, sink.Duplicates);
    }

    [Fact]
    public async Task An_event_over_the_servers_max_payload_is_stored_shortened_with_its_original_size_and_the_rest_of_its_batch_is_stored()
    {
        // A server of its own with a 64 KiB max payload, so the big events stay small for a test.
        var config = Path.Combine(Path.GetTempPath(), $"nats-small-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(config, "max_payload: 65536\n");
        var small = new NatsServerFixture { ExtraArguments = ["-c", config] };
        try
        {
            await small.InitializeAsync();
            await using var connection = small.Connect("small");
            await connection.ConnectAsync();
            Assert.Equal(65536, connection.ServerInfo!.MaxPayload);

            using var sink = new NatsEventSink(connection, Options());
            var text = new string('x', 100_000);
            var bigResult = Event(1, "big-result") with { Result = JsonDocument.Parse($"{{\"text\":\"{text}\"}}").RootElement.Clone() };
            var bigError = Event(1, "big-error") with { EventType = EventTypes.CommandFailed, Status = EventStatus.Failed, Error = "boom " + text };
            await sink.WriteAsync(new[] { Event(1, "before"), bigResult, bigError, Event(1, "after") }, CancellationToken.None);

            var stored = await ReadAsync(connection, $"{Stream}.1");
            Assert.Equal(["before", "big-result", "big-error", "after"], stored.Select(e => e.Body.GetProperty("command_id").GetString()));
            var result = stored[1].Body.GetProperty("result");
            Assert.True(result.GetProperty("truncated").GetBoolean());
            Assert.Equal(Encoding.UTF8.GetByteCount(bigResult.Result.GetRawText()), result.GetProperty("original_bytes").GetInt32());
            Assert.Equal(65536, result.GetProperty("max_payload").GetInt32());
            var error = stored[2].Body.GetProperty("error").GetString()!;
            Assert.StartsWith($"[truncated: the error was {Encoding.UTF8.GetByteCount(bigError.Error!)} bytes", error, StringComparison.Ordinal);
            Assert.Contains("boom xxx", error, StringComparison.Ordinal);
            // Shortened, it keeps its Nats-Msg-Id: a retry of it is still a duplicate, not a second copy.
            Assert.Equal(stored[1].MsgId, $"big-result:{EventTypes.CommandCompleted}:0:{bigResult.CreatedAt.UtcTicks}");
            await sink.WriteAsync(new[] { bigResult }, CancellationToken.None);
            Assert.Equal(4L, (await new NatsJSContext(connection).GetStreamAsync(Stream)).Info.State.Messages);
        }
        finally
        {
            await small.DisposeAsync();
            File.Delete(config);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("events.{execution_id}.>")]
    [InlineData("events..{execution_id}")]
    [InlineData("events {execution_id}")]
    public void A_template_that_is_not_a_subject_is_refused(string template) =>
        Assert.Throws<ArgumentException>(() => new NatsEventSinkOptions { SubjectTemplate = template }.Validate());
}
