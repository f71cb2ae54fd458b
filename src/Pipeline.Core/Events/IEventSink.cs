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

/// <summary>A sink that discards every event.</summary>
public sealed class NullEventSink : IEventSink
{
    /// <summary>The shared instance.</summary>
    public static NullEventSink Instance { get; } = new();

    /// <inheritdoc/>
    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken) =>
        ValueTask.CompletedTask;
}
