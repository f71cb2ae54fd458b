namespace Pipeline.Tests.Events;

public sealed class JsonLinesEventSinkTests
{
    private static readonly DateTimeOffset At = new(2026, 11, 24, 9, 30, 0, TimeSpan.Zero);

    [Fact]
    public async Task Each_event_is_one_line_with_the_envelope_field_names()
    {
        using var stream = new MemoryStream();
        await using (var sink = new JsonLinesEventSink(stream))
        {
            using var result = JsonDocument.Parse("""{"status": 200}""");
            await sink.WriteAsync(new[]
            {
                new PipelineEvent
                {
                    EventType = EventTypes.CommandCompleted,
                    Status = EventStatus.Completed,
                    CreatedAt = At,
                    ExecutionId = 9_007_199_254_740_993, // above 2^53: must survive as an integer
                    Step = "fetch",
                    CommandId = "cmd-1",
                    ToolKind = "http",
                    WorkerId = "w1",
                    Attempts = 2,
                    DurationMs = 12.34567,
                    Result = result.RootElement,
                },
                new PipelineEvent
                {
                    EventType = EventTypes.ClaimFailed,
                    Status = EventStatus.Failed,
                    CreatedAt = At,
                    Error = "file line 3: malformed command",
                },
            }, default);
        }

        var lines = Encoding.UTF8.GetString(stream.ToArray()).Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Equal(string.Empty, lines[2]);
        Assert.Equal(
            """{"execution_id":9007199254740993,"event_type":"command.completed","step":"fetch","status":"COMPLETED","created_at":"2026-11-24T09:30:00Z","command_id":"cmd-1","tool_kind":"http","worker_id":"w1","attempts":2,"duration_ms":12.346,"result":{"status":200}}""",
            lines[0]);
        Assert.Equal(
            """{"execution_id":0,"event_type":"claim.failed","step":null,"status":"FAILED","created_at":"2026-11-24T09:30:00Z","command_id":null,"tool_kind":null,"worker_id":null,"attempts":0,"error":"file line 3: malformed command"}""",
            lines[1]);
    }

    [Fact]
    public async Task A_failed_write_closes_the_sink_for_good_so_no_line_is_torn_or_repeated()
    {
        // Part of a batch may be on disk when a write fails (a full disk): a retry would tear a line
        // and repeat events, so the first failure is terminal and later writes refuse at once.
        var stream = new FailOnceStream();
        await using var sink = new JsonLinesEventSink(stream);
        var batch = new[] { new PipelineEvent { EventType = "a", Status = "S", CreatedAt = At, CommandId = "one" } };

        var first = await Assert.ThrowsAsync<EventSinkClosedException>(async () => await sink.WriteAsync(batch, default));
        Assert.IsAssignableFrom<IOException>(first.InnerException);
        await Assert.ThrowsAsync<EventSinkClosedException>(async () => await sink.WriteAsync(batch, default));

        Assert.Empty(stream.ToArray());
    }

    [Fact]
    public async Task A_file_sink_creates_the_file_and_closes_it_on_dispose()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pipeline-events-{Guid.NewGuid():N}.jsonl");
        try
        {
            await using (var sink = JsonLinesEventSink.CreateFile(path))
            {
                await sink.WriteAsync(new[] { new PipelineEvent { EventType = "x", Status = "S", CreatedAt = At } }, default);
            }

            var line = Assert.Single(await File.ReadAllLinesAsync(path));
            Assert.Equal("x", JsonDocument.Parse(line).RootElement.GetProperty("event_type").GetString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class FailOnceStream : MemoryStream
    {
        private bool _failed;

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_failed)
            {
                _failed = true;
                throw new IOException("disk full");
            }

            return base.WriteAsync(buffer, cancellationToken);
        }
    }
}
