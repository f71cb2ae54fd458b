namespace Pipeline.Events;

/// <summary>
/// Where events go. The Emit block hands over batches; a sink writes one batch per call and
/// must not keep <paramref name="batch"/> after returning (its memory is reused).
/// </summary>
public interface IEventSink
{
    /// <summary>Writes one batch. A throw is retried by the Emit block, then the batch is counted as dropped.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken);
}

/// <summary>
/// Thrown by a sink that will never take another event (its target is completed or disposed): the
/// Emit block does not retry it, whatever <see cref="Engine.PipelineOptions.SinkFailure"/> says,
/// but drops and counts the batch.
/// </summary>
public sealed class EventSinkClosedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EventSinkClosedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public EventSinkClosedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public EventSinkClosedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A sink that discards every event.</summary>
public sealed class NullEventSink : IEventSink
{
    /// <summary>The shared instance.</summary>
    public static NullEventSink Instance { get; } = new();

    /// <inheritdoc/>
    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken) =>
        ValueTask.CompletedTask;
}
