using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Pipeline.Commands;
using Pipeline.Modules;
using Polly;
using Polly.Retry;

namespace Pipeline.Storage;

/// <summary>
/// <c>pipeline enqueue</c> on a queued-work store: each command a batch of the session named by
/// its <c>execution_id</c> (so an execution's commands are claimed in the order of the input),
/// keyed by its <c>command_id</c> (so enqueueing it again is a duplicate, not stored twice).
/// Commands are written <see cref="BatchSize"/> to a transaction, one transaction at a time (in
/// order: two written side by side could commit out of order) while the next one fills.
/// </summary>
internal sealed class StoreEnqueuer : ICommandEnqueuer
{
    /// <summary>Commands written in one transaction at most.</summary>
    public const int BatchSize = 500;

    // How long a write may keep failing in a way that may pass (a busy file, a lost connection) before it is given up.
    private static readonly TimeSpan WriteBound = TimeSpan.FromSeconds(30);

    private readonly Func<CancellationToken, Task<IQueuedWorkStore>> _open;
    private readonly IReadOnlyList<string> _settingErrors;
    private readonly Func<Exception, string> _explain;
    private readonly Func<Exception, bool> _transientOpen;
    private readonly Action<EnqueueFailure> _onFailure;
    private readonly Channel<List<Item>> _batches = Channel.CreateBounded<List<Item>>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
    private List<Item> _filling = new(BatchSize);
    private IQueuedWorkStore? _store;
    private Task? _writer;
    private long _enqueued;
    private long _duplicates;
    private long _failed;
    private string? _fatal;

    /// <param name="open">Opens the store.</param>
    /// <param name="destination">The store as the summary names it (<c>SQLite store /work/pipeline.db</c>).</param>
    /// <param name="settingErrors">Settings that cannot work, found when the flags were bound: start fails with them.</param>
    /// <param name="explain">A store failure as one line, without secrets.</param>
    /// <param name="transientOpen">Whether an open that failed so may pass when tried again.</param>
    /// <param name="onFailure">Told of each command not stored.</param>
    public StoreEnqueuer(Func<CancellationToken, Task<IQueuedWorkStore>> open, string destination, IReadOnlyList<string> settingErrors, Func<Exception, string> explain, Func<Exception, bool> transientOpen, Action<EnqueueFailure> onFailure)
    {
        _open = open;
        Destination = destination;
        _settingErrors = settingErrors;
        _explain = explain;
        _transientOpen = transientOpen;
        _onFailure = onFailure;
    }

    public string Destination { get; }

    /// <inheritdoc/>
    public string StoredAs => "enqueued";

    /// <inheritdoc/>
    public string UnconfirmedAs => "being written";

    public string DuplicateMeaning => "already in the store (same command_id): not stored again";

    public string FailureMeaning => "not stored";

    public long Enqueued => Interlocked.Read(ref _enqueued);

    public long Duplicates => Interlocked.Read(ref _duplicates);

    public long Failed => Interlocked.Read(ref _failed);

    public string? FatalError => Volatile.Read(ref _fatal);

    public async Task StartAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        if (_settingErrors.Count > 0)
        {
            throw new EnqueueException(string.Join(" ", _settingErrors)) { SettingError = true };
        }

        using var start = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        start.CancelAfter(bound);
        try
        {
            _store = await Retry(_transientOpen).ExecuteAsync(static async (open, ct) => await open(ct).ConfigureAwait(false), _open, start.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EnqueueException(string.Create(CultureInfo.InvariantCulture, $"{Destination} could not be opened within {bound.TotalSeconds:0} s"), ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new EnqueueException(Sentence(_explain(ex)), ex);
        }

        _writer = Task.Run(WriteLoopAsync, CancellationToken.None);
    }

    public async ValueTask EnqueueAsync(Command command, long tag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        _filling.Add(new Item(command.CommandId, tag, new QueuedBatchDraft
        {
            SessionId = command.ExecutionId.ToString(CultureInfo.InvariantCulture),
            Payload = JsonSerializer.SerializeToUtf8Bytes(command, CommandJsonContext.Default.Command),
            IdempotencyKey = command.CommandId,
        }));
        if (_filling.Count >= BatchSize)
        {
            await SendAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task FlushAsync()
    {
        if (_filling.Count > 0)
        {
            await SendAsync(CancellationToken.None).ConfigureAwait(false);
        }

        _batches.Writer.TryComplete();
        if (_writer is { } writer)
        {
            await writer.ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _batches.Writer.TryComplete();
        if (_writer is { } writer)
        {
            await writer.ConfigureAwait(false);
        }

        if (_store is { } store)
        {
            await store.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string Sentence(string text) => text.EndsWith('.') ? text : text + ".";

    private static ResiliencePipeline Retry(Func<Exception, bool> transient) =>
        new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(100),
                MaxDelay = TimeSpan.FromSeconds(2),
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is { } ex && transient(ex)),
            })
            .Build();

    private async ValueTask SendAsync(CancellationToken cancellationToken)
    {
        var batch = _filling;
        _filling = new List<Item>(BatchSize);
        if (_writer is null || !await _batches.Writer.WaitToWriteAsync(cancellationToken).ConfigureAwait(false) || !_batches.Writer.TryWrite(batch))
        {
            Fail(batch, "the store is not open");
        }
    }

    private async Task WriteLoopAsync()
    {
        var store = _store!;
        var retry = Retry(store.IsTransient);
        await foreach (var batch in _batches.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (FatalError is not null)
            {
                Fail(batch, "an earlier write failed");
                continue;
            }

            try
            {
                using var bound = new CancellationTokenSource(WriteBound);
                var drafts = batch.ConvertAll(i => i.Draft);
                var results = await retry.ExecuteAsync(static (state, ct) => state.store.EnqueueAsync(state.drafts, ct), (store, drafts), bound.Token).ConfigureAwait(false);
                var created = results.Count(r => r.Created);
                Interlocked.Add(ref _enqueued, created);
                Interlocked.Add(ref _duplicates, results.Count - created);
            }
            catch (Exception ex)
            {
                var why = ex is OperationCanceledException
                    ? string.Create(CultureInfo.InvariantCulture, $"{Destination} could not be written within {WriteBound.TotalSeconds:0} s")
                    : _explain(ex);
                Volatile.Write(ref _fatal, $"{Sentence(why)} The rest of the input was not stored (run the same input again: what was stored is a duplicate by command_id and not stored twice).");
                Fail(batch, why);
            }
        }
    }

    // Every failure here ends enqueueing (FatalError says why, once): the first command of the
    // batch is named, the rest counted, rather than a line for each of hundreds.
    private void Fail(List<Item> batch, string reason)
    {
        Interlocked.Add(ref _failed, batch.Count);
        if (batch.Count > 0)
        {
            var more = batch.Count > 1 ? string.Create(CultureInfo.InvariantCulture, $" (with the {batch.Count - 1} commands after it in the same transaction)") : string.Empty;
            _onFailure(new EnqueueFailure(batch[0].Tag, batch[0].CommandId, reason + more));
        }
    }

    private sealed record Item(string CommandId, long Tag, QueuedBatchDraft Draft);
}
