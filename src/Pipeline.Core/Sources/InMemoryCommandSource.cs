using Pipeline.Commands;

namespace Pipeline.Sources;

/// <summary>
/// An in-memory source for tests, benchmarks and embedding. No durability: a nacked item comes
/// back with <c>attempts + 1</c>; the source is exhausted after <see cref="Complete"/> once every
/// delivery is settled.
/// </summary>
public sealed class InMemoryCommandSource : QueuedCommandSource
{
    /// <summary>Creates an empty source; add items with <see cref="Enqueue(Command)"/>.</summary>
    public InMemoryCommandSource(TimeProvider? timeProvider = null)
        : base(timeProvider)
    {
    }

    /// <summary>Creates a source holding <paramref name="commands"/>, completed so it ends once they are all settled.</summary>
    public static InMemoryCommandSource From(IEnumerable<Command> commands, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(commands);
        var source = new InMemoryCommandSource(timeProvider);
        foreach (var command in commands)
        {
            source.Enqueue(command);
        }

        source.Complete();
        return source;
    }

    /// <summary>Adds a command; it is delivered as <see cref="ClaimOutcome.Claimed"/>.</summary>
    public void Enqueue(Command command) => EnqueueReady(ClaimOutcome.Claimed(command));

    /// <summary>Adds an item with any outcome (for exercising the other three outcomes).</summary>
    public void Enqueue(ClaimOutcome outcome) => EnqueueReady(outcome);

    /// <summary>No more items will be added.</summary>
    public void Complete() => CompleteInput();
}
