using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Sources;
using Pipeline.Storage;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// The store source (<see cref="StoreCommandSource"/>) under the source conformance suite, over any
/// <see cref="IQueuedWorkStore"/>: the seed enqueued one command per session (so one puller may hold
/// several at once and gets them in seed order), the lease as the redelivery deadline, and what the
/// backend holds read from the store's own summary.
/// </summary>
public sealed class StoreSourceBackend : CommandSourceBackend<StoreHandle>
{
    private readonly IQueuedWorkStore _store;
    private readonly StoreSourceOptions _options;
    private readonly Func<ValueTask>? _cleanUp;
    private readonly List<StoreCommandSource> _sources = [];

    private StoreSourceBackend(IQueuedWorkStore store, StoreSourceOptions options, Func<ValueTask>? cleanUp)
    {
        _store = store;
        _options = options;
        _cleanUp = cleanUp;
        _sources.Add(new StoreCommandSource(store, options, "test-store"));
    }

    /// <inheritdoc/>
    public override ICommandSource<StoreHandle> Source => _sources[0];

    /// <inheritdoc/>
    public override bool EndsAtEndOfInput => false;

    /// <inheritdoc/>
    public override TimeSpan? RedeliveryDeadline => _options.LeaseTimeToLive;

    /// <inheritdoc/>
    public override long? AttemptOf(Pulled<StoreHandle> pulled) => pulled.Outcome.Command?.Attempts;

    /// <summary>Enqueues <paramref name="seed"/> into <paramref name="store"/> (empty) and opens the source over it as <paramref name="settings"/> ask.</summary>
    /// <param name="store">A fresh, empty store on the real clock; disposed with the backend.</param>
    /// <param name="seed">The commands, in order.</param>
    /// <param name="settings">The lease (redelivery deadline) and idle timeout.</param>
    /// <param name="cleanUp">Runs after the store is disposed (a temp file removed, a database dropped); optional.</param>
    public static async ValueTask<StoreSourceBackend> CreateAsync(IQueuedWorkStore store, IReadOnlyList<Command> seed, ConformanceSettings settings, Func<ValueTask>? cleanUp = null)
    {
        var drafts = seed.Select(c => new QueuedBatchDraft
        {
            SessionId = c.CommandId,
            Payload = JsonSerializer.SerializeToUtf8Bytes(c),
            IdempotencyKey = c.CommandId,
        }).ToList();
        if (drafts.Count > 0)
        {
            await store.EnqueueAsync(drafts, CancellationToken.None);
        }

        var options = new StoreSourceOptions
        {
            Owner = "conformance",
            LeaseTimeToLive = settings.RedeliveryDeadline,
            IdleTimeout = settings.IdleTimeout,
            PollInterval = TimeSpan.FromMilliseconds(20),
        };
        return new StoreSourceBackend(store, options, cleanUp);
    }

    /// <inheritdoc/>
    public override async ValueTask<BackendRecord> ReadAsync(CancellationToken cancellationToken)
    {
        var summary = await _store.SummarizeAsync(1_000, cancellationToken);
        return new BackendRecord(
            summary.Pending,
            summary.Claimed,
            [.. summary.DeadLetters.Reverse().Select(d => new DeadLetterRecord(CommandIdOf(d), d.DeadLetterReason))]);
    }

    /// <inheritdoc/>
    public override ValueTask<ICommandSource<StoreHandle>> OpenAnotherSourceAsync(CancellationToken cancellationToken)
    {
        var another = new StoreCommandSource(_store, _options with { Owner = "conformance-2" }, "test-store");
        _sources.Add(another);
        return new(another);
    }

    /// <inheritdoc/>
    public override async ValueTask DisposeAsync()
    {
        foreach (var source in _sources)
        {
            await source.DisposeAsync();
        }

        await _store.DisposeAsync();
        if (_cleanUp is not null)
        {
            await _cleanUp();
        }
    }

    private static string CommandIdOf(QueuedBatch batch)
    {
        try
        {
            return Command.Parse(batch.Payload.Span).CommandId;
        }
        catch (JsonException)
        {
            return $"(batch {batch.BatchId})";
        }
    }
}
