using Pipeline.Events;

namespace Pipeline.Cli.Tests;

/// <summary>The summary's unfinished count and failure list, from the events as the Emit block hands them over (retries included).</summary>
public sealed class FailureRecorderTests
{
    private static PipelineEvent Event(string type, string id) => new()
    {
        EventType = type,
        Status = type == EventTypes.CommandFailed ? EventStatus.Failed : EventStatus.Started,
        CreatedAt = DateTimeOffset.UnixEpoch,
        CommandId = id,
    };

    [Fact]
    public async Task A_batch_retried_after_a_failed_write_is_counted_once_so_its_started_events_are_not_unfinished()
    {
        // One command's start in a batch whose first write fails; its end in the next batch.
        var sink = new FailOnceSink();
        var recorder = new FailureRecorder(sink, keep: 10);
        var first = new[] { Event(EventTypes.CommandStarted, "a"), Event(EventTypes.CommandStarted, "b"), Event(EventTypes.CommandFailed, "b") };

        await Assert.ThrowsAsync<IOException>(async () => await recorder.WriteAsync(first, CancellationToken.None));
        await recorder.WriteAsync(first, CancellationToken.None); // the Emit block's retry
        await recorder.WriteAsync(new[] { Event(EventTypes.CommandCompleted, "a") }, CancellationToken.None);

        Assert.Equal(0, recorder.Unfinished);
        Assert.Equal("b", Assert.Single(recorder.Failures).CommandId);
    }

    [Fact]
    public async Task A_start_without_its_end_is_unfinished() // a stop that cut the tool off
    {
        var recorder = new FailureRecorder(NullEventSink.Instance, keep: 10);
        await recorder.WriteAsync(new[] { Event(EventTypes.CommandStarted, "a"), Event(EventTypes.CommandStarted, "b"), Event(EventTypes.CommandCompleted, "a") }, CancellationToken.None);

        Assert.Equal(1, recorder.Unfinished);
    }

    /// <summary>Fails its first write, asynchronously (as a NATS publish does), then takes everything.</summary>
    private sealed class FailOnceSink : IEventSink
    {
        private int _writes;

        public async ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            await Task.Yield();
            if (Interlocked.Increment(ref _writes) == 1)
            {
                throw new IOException("not acknowledged");
            }
        }
    }
}
