namespace Pipeline.Nats.Events;

/// <summary>Where the JetStream event sink publishes. Immutable; <see cref="Validate"/> names the first bad setting.</summary>
public sealed record NatsEventSinkOptions
{
    /// <summary>The placeholder in <see cref="SubjectTemplate"/> replaced by the event's execution id.</summary>
    public const string ExecutionIdPlaceholder = "{execution_id}";

    /// <summary>The events stream, created when missing (<see cref="CreateIfMissing"/>). Default <c>pipeline_events</c>.</summary>
    public string Stream { get; init; } = "pipeline_events";

    /// <summary>The events stream's subjects, when it is created. Default <c>pipeline.events.&gt;</c>.</summary>
    public IReadOnlyList<string> Subjects { get; init; } = ["pipeline.events.>"];

    /// <summary>The subject of each event; <c>{execution_id}</c> is replaced. Default <c>pipeline.events.{execution_id}</c>.</summary>
    public string SubjectTemplate { get; init; } = "pipeline.events." + ExecutionIdPlaceholder;

    /// <summary>Create the stream when missing. Default true.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Throws the first of <see cref="FindErrors"/>, naming the setting that cannot work.</summary>
    public void Validate()
    {
        if (FindErrors() is [var first, ..])
        {
            throw first;
        }
    }

    /// <summary>Every setting that cannot work, not only the first, each an exception naming it (its message starts with the property's name).</summary>
    public IReadOnlyList<ArgumentException> FindErrors()
    {
        var errors = new List<ArgumentException>();
        if (string.IsNullOrWhiteSpace(Stream) || Stream.AsSpan().IndexOfAny(" \t\r\n.*>") >= 0)
        {
            errors.Add(new ArgumentException($"Stream must be a non-empty name without spaces, '.', '*' or '>' (it is \"{Stream}\").", nameof(Stream)));
        }

        if (Subjects is null || Subjects.Count == 0 || Subjects.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add(new ArgumentException("Subjects must list at least one non-empty subject.", nameof(Subjects)));
        }

        var sample = SubjectTemplate?.Replace(ExecutionIdPlaceholder, "1", StringComparison.Ordinal);
        if (string.IsNullOrWhiteSpace(sample) || sample.AsSpan().IndexOfAny(" \t\r\n*>{}") >= 0 || sample.StartsWith('.') || sample.EndsWith('.') || sample.Contains("..", StringComparison.Ordinal))
        {
            errors.Add(new ArgumentException($"SubjectTemplate must be a publishable subject once {ExecutionIdPlaceholder} is replaced (it is \"{SubjectTemplate}\").", nameof(SubjectTemplate)));
        }

        return errors;
    }
}
