using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Telemetry;
using Pipeline.Tools;
using Polly;
using Polly.Retry;
using RecentCommandIds = Pipeline.Bench.Legacy.RecentCommandIds;

namespace Pipeline.Bench.Legacy;

/// <summary>
/// Today's channel engine, kept in the bench only to measure the Dataflow engine against it.
/// The worker: Pull → Claim → Ack-decision → Dispatch → Emit, five bounded blocks joined by
/// bounded channels. Every pulled handle is settled (acked, nacked or terminated) exactly once,
/// on every path.
/// </summary>
/// <remarks>
/// Each block is a bounded input queue drained by its own number of workers. A full queue makes
/// the block before it wait, all the way back to the source: at most
/// <see cref="PipelineOptions.MaxItemsHeld"/> items are ever held. Stopping cancels the pulls,
/// lets the blocks drain for <see cref="PipelineOptions.ShutdownTimeout"/>, then cancels the
/// running tools (which settles their items as failed) and flushes the events.
/// </remarks>
/// <typeparam name="THandle">The source's handle type.</typeparam>
public sealed class CommandPipeline<THandle>
{
    private readonly SourceCapabilities<THandle> _source;
    private readonly ToolRegistry _tools;
    private readonly IEventSink _sink;
    private readonly IClaimer _claimer;
    private readonly PipelineOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RecentCommandIds? _recent;

    private readonly Channel<WorkItem<THandle>> _claimQueue;
    private readonly Channel<WorkItem<THandle>> _decideQueue;
    private readonly Channel<WorkItem<THandle>> _dispatchQueue;
    private readonly Channel<EventBatch> _eventQueue;

    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abort;
    private readonly ResiliencePipeline<Pulled<THandle>?> _pullResilience;
    private readonly ResiliencePipeline<ToolAttempt> _toolRetry;
    private readonly ResiliencePipeline<bool>? _emitResilience;
    private int _started;

    /// <summary>Builds a pipeline; nothing runs until <see cref="RunAsync"/>.</summary>
    /// <param name="source">Where commands come from.</param>
    /// <param name="tools">The tools dispatch routes to by <c>tool_kind</c>.</param>
    /// <param name="sink">Where events go.</param>
    /// <param name="options">Tuning; defaults when null. Validated here.</param>
    /// <param name="claimer">The claim authority; <see cref="PassThroughClaimer"/> when null.</param>
    /// <param name="timeProvider">The clock for timeouts, backoff and events; the system clock when null.</param>
    /// <param name="logger">Diagnostics for errors the events cannot carry.</param>
    public CommandPipeline(
        ICommandSource<THandle> source,
        ToolRegistry tools,
        IEventSink sink,
        PipelineOptions? options = null,
        IClaimer? claimer = null,
        TimeProvider? timeProvider = null,
        ILogger? logger = null)
    {
        _source = SourceCapabilities<THandle>.Discover(source);
        _tools = tools ?? throw new ArgumentNullException(nameof(tools));
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _options = options ?? new PipelineOptions();
        _options.Validate();
        _claimer = claimer ?? PassThroughClaimer.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _recent = _options.RecentCommandIds > 0 ? new RecentCommandIds(_options.RecentCommandIds) : null;
        _abort = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);

        _claimQueue = CreateQueue<WorkItem<THandle>>(_options.Claim, _options.PullParallelism);
        _decideQueue = CreateQueue<WorkItem<THandle>>(_options.AckDecision, _options.Claim.Parallelism);
        _dispatchQueue = CreateQueue<WorkItem<THandle>>(_options.Dispatch, _options.AckDecision.Parallelism);
        // Events travel in batches: the Emit queue holds Capacity events' worth of full batches.
        _eventQueue = CreateQueue<EventBatch>(
            _options.Emit with { Capacity = Math.Max(1, _options.Emit.Capacity / _options.EmitBatchSize) }, singleWriter: 0);

        Stats = new PipelineStats(() => new QueueDepths(
            _claimQueue.Reader.Count, _decideQueue.Reader.Count, _dispatchQueue.Reader.Count, _eventQueue.Reader.Count));

        _pullResilience = BuildPullResilience();
        _toolRetry = BuildToolRetry();
        _emitResilience = BuildEmitResilience();
    }

    /// <summary>Live counters and queue depths.</summary>
    public PipelineStats Stats { get; }

    /// <summary>The options in force.</summary>
    public PipelineOptions Options => _options;

    /// <summary>
    /// Runs until the source is exhausted or <paramref name="stoppingToken"/> fires, then drains
    /// (see the remarks on the class) and returns. Every pulled handle is settled when it returns.
    /// A pipeline runs once.
    /// </summary>
    public async Task RunAsync(CancellationToken stoppingToken)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("A pipeline runs once; build a new one to run again.");
        }

        await using var stop = stoppingToken.Register(static state => ((CommandPipeline<THandle>)state!).RequestStop(), this);

        // Start from the end so every block has a reader before anything is written to it.
        var emit = RunWorkers(_options.Emit.Parallelism, EmitWorkerAsync);
        var dispatch = RunWorkers(_options.Dispatch.Parallelism, () => DrainAsync(_dispatchQueue.Reader, DispatchAsync, NewWorker(tools: true)));
        var decide = RunWorkers(_options.AckDecision.Parallelism, () => DrainAsync(_decideQueue.Reader, DecideAsync, NewWorker(tools: false)));
        var claim = RunWorkers(_options.Claim.Parallelism, () => DrainAsync(_claimQueue.Reader, ClaimAsync, NewWorker(tools: false)));
        var pull = RunWorkers(_options.PullParallelism, PullWorkerAsync);

        // Each block finishes after the one before it has, so nothing is written to a closed queue.
        await pull.ConfigureAwait(false);
        _claimQueue.Writer.Complete();
        await claim.ConfigureAwait(false);
        _decideQueue.Writer.Complete();
        await decide.ConfigureAwait(false);
        _dispatchQueue.Writer.Complete();
        await dispatch.ConfigureAwait(false);
        _eventQueue.Writer.Complete();
        await emit.ConfigureAwait(false);
    }

    /// <summary>Stops pulling and starts the shutdown deadline. <see cref="RunAsync"/> returns once drained.</summary>
    public void RequestStop()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        _stopping.Cancel();
        _abort.CancelAfter(_options.ShutdownTimeout);
    }

    // ---- Pull ------------------------------------------------------------------------------

    private async Task PullWorkerAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            Pulled<THandle>? next;
            try
            {
                next = await PullAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }

            if (next is not { } pulled)
            {
                return; // exhausted
            }

            Stats.Increment(StatCounter.Pulled);

            // Once pulled, the item must reach a settle: write without a token (the Claim block drains).
            await WriteAsync(_claimQueue, new WorkItem<THandle>(pulled, _time.GetTimestamp())).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One <c>NextAsync</c>, straight to the source while it succeeds; the first failure hands
    /// over to Polly's retry (replaying that failure), which backs off until a call succeeds.
    /// </summary>
    private async ValueTask<Pulled<THandle>?> PullAsync(CancellationToken stopping)
    {
        Exception failure;
        try
        {
            return await _source.Source.NextAsync(stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && stopping.IsCancellationRequested))
        {
            failure = ex;
        }

        var replay = new ReplayFirstOutcome<ICommandSource<THandle>, bool, Pulled<THandle>?>(
            _source.Source, false, Outcome.FromException<Pulled<THandle>?>(failure), static (source, _, token) => source.NextAsync(token));
        return await _pullResilience.ExecuteAsync(static (state, token) => state.NextAsync(token), replay, stopping).ConfigureAwait(false);
    }

    // ---- Claim -----------------------------------------------------------------------------

    private async ValueTask ClaimAsync(WorkItem<THandle> item, Worker worker)
    {
        if (item.Outcome.Kind == ClaimOutcomeKind.Claimed)
        {
            var commandId = item.Outcome.Command!.CommandId;
            if (_recent is not null)
            {
                if (!_recent.TryBegin(commandId))
                {
                    item.IsDuplicate = true;
                    await ForwardAsync(_decideQueue, item, worker).ConfigureAwait(false);
                    return;
                }

                item.TracksId = true;
            }

            try
            {
                item.Outcome = await _claimer.ClaimAsync(item.Outcome, _abort.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                item.Outcome = ClaimOutcome.RetryLater($"claim threw {ex.GetType().Name}: {ex.Message}", item.Outcome.Command);
            }
        }

        await ForwardAsync(_decideQueue, item, worker).ConfigureAwait(false);
    }

    // ---- Ack-decision ----------------------------------------------------------------------

    private async ValueTask DecideAsync(WorkItem<THandle> item, Worker worker)
    {
        var outcome = item.Outcome;
        if (item.IsDuplicate)
        {
            await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
            Stats.Increment(StatCounter.Skipped);
            Emit(worker, outcome.Command, EventTypes.CommandSkipped, EventStatus.Skipped, error: "duplicate delivery of a command this worker is running or has run");
            return;
        }

        switch (outcome.Kind)
        {
            case ClaimOutcomeKind.Claimed:
                // The Dispatch worker emits command.claimed (stamped now) ahead of command.started,
                // so one command's events leave in order from one worker's batch.
                item.ClaimedAt = _time.GetUtcNow();
                if (_options.AckMode == AckMode.AckBeforeDispatch)
                {
                    await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
                    item.Settled = true;
                }

                await ForwardAsync(_dispatchQueue, item, worker).ConfigureAwait(false);
                return;

            case ClaimOutcomeKind.AlreadyClaimed:
                await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
                Stats.Increment(StatCounter.Skipped);
                Emit(worker, outcome.Command, EventTypes.CommandSkipped, EventStatus.Skipped, error: "already claimed by another worker");
                return;

            case ClaimOutcomeKind.RetryLater:
                await SettleAsync(item, Settlement.Nack, DelayFor(outcome.Command)).ConfigureAwait(false);
                Stats.Increment(StatCounter.ClaimRetries);
                Emit(worker, outcome.Command, EventTypes.ClaimRetry, EventStatus.Retry, error: outcome.Reason);
                return;

            default:
                var terminate = _options.FailedClaimAction == FailedClaimAction.Terminate && _source.Terminate is not null;
                await SettleAsync(item, terminate ? Settlement.Terminate : Settlement.Nack, DelayFor(outcome.Command), outcome.Reason).ConfigureAwait(false);
                Stats.Increment(StatCounter.ClaimFailures);
                Emit(worker, outcome.Command, EventTypes.ClaimFailed, EventStatus.Failed, error: outcome.Reason);
                return;
        }
    }

    // ---- Dispatch --------------------------------------------------------------------------
    // The three dispatch methods use pooled builders: with a slow tool every dispatch suspends,
    // and a fresh state-machine box each time would be most of its garbage.

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask DispatchAsync(WorkItem<THandle> item, Worker worker)
    {
        var command = item.Outcome.Command!;
        Emit(worker, command, EventTypes.CommandClaimed, EventStatus.Claimed, createdAt: item.ClaimedAt);
        Emit(worker, command, EventTypes.CommandStarted, EventStatus.Started);

        var started = _time.GetTimestamp();
        ToolResult result;
        bool permanent;
        using (var activity = PipelineTelemetry.ActivitySource.StartActivity("pipeline.dispatch", ActivityKind.Consumer))
        {
            activity?.SetTag("pipeline.command_id", command.CommandId);
            activity?.SetTag("pipeline.execution_id", command.ExecutionId);
            activity?.SetTag("pipeline.tool_kind", command.ToolKind);
            using var keepAlive = item.Settled ? null : KeepAlive.Start(_source, item.Handle, _time, _logger);
            (result, permanent) = await RunToolAsync(command, worker).ConfigureAwait(false);
            if (!result.IsSuccess)
            {
                activity?.SetStatus(ActivityStatusCode.Error, result.Error);
            }
        }

        var duration = _time.GetElapsedTime(started);
        PipelineTelemetry.DispatchDuration.Record(duration.TotalMilliseconds);

        if (result.IsSuccess)
        {
            Stats.Increment(StatCounter.Completed);
            if (!item.Settled)
            {
                await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
            }

            Emit(worker, command, EventTypes.CommandCompleted, EventStatus.Completed, duration, result.Value);
            return;
        }

        Stats.Increment(StatCounter.Failed);
        var error = result.Error!;
        if (!item.Settled)
        {
            var attempt = command.Attempts + 1;
            if (!permanent && attempt < _options.MaxAttempts)
            {
                await SettleAsync(item, Settlement.Nack, DelayFor(command)).ConfigureAwait(false);
                error = $"{error} (attempt {attempt} of {_options.MaxAttempts}; redelivering)";
            }
            else
            {
                error = permanent ? $"{error} (not retryable; giving up)" : $"{error} (attempt {attempt} of {_options.MaxAttempts}; giving up)";
                await SettleAsync(item, _source.Terminate is not null ? Settlement.Terminate : Settlement.Ack, reason: error).ConfigureAwait(false);
            }
        }

        Emit(worker, command, EventTypes.CommandFailed, EventStatus.Failed, duration, result.Value, error);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ToolAttempt> RunToolAsync(Command command, Worker worker)
    {
        if (!_tools.TryGet(command.ToolKind, out var tool))
        {
            return new(ToolResult.Failure($"unknown tool_kind '{command.ToolKind}'; registered tools: {_tools.KnownKinds}."), Permanent: true);
        }

        var first = await AttemptAsync(tool, command, worker).ConfigureAwait(false);
        if (first.Result.IsSuccess || first.Permanent || !first.Result.IsTransient || _options.ToolRetries == 0)
        {
            return first;
        }

        // The rare path: Polly retries the transient failure, with backoff, replaying the first attempt.
        // Attempts never throw; the tool's own cancellation (timeout, deadline) is inside AttemptAsync.
        var retry = new ReplayFirstOutcome<CommandPipeline<THandle>, (ITool Tool, Command Command, Worker Worker), ToolAttempt>(
            this, (tool, command, worker), Outcome.FromResult(first), static (owner, a, _) => owner.AttemptAsync(a.Tool, a.Command, a.Worker));
        var context = ResilienceContextPool.Shared.Get(_abort.Token);
        try
        {
            var outcome = await _toolRetry.ExecuteOutcomeAsync(
                static async (context, state) => Outcome.FromResult(await state.NextAsync(context.CancellationToken).ConfigureAwait(false)),
                context,
                retry).ConfigureAwait(false);
            return outcome.Exception is null
                ? outcome.Result
                : new(ToolResult.Failure($"{command.ToolKind}: cancelled at the shutdown deadline.", transient: true), Permanent: false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>One tool run under the per-attempt timeout and the shutdown deadline; never throws.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ToolAttempt> AttemptAsync(ITool tool, Command command, Worker worker)
    {
        var cancellation = worker.Tools!;
        var token = cancellation.Begin();
        try
        {
            var pending = tool.InvokeAsync(command, token);
            if (pending.IsCompleted)
            {
                return new(pending.Result, Permanent: false);
            }

            // The tool went asynchronous: start its clock, and let the events out while it runs.
            cancellation.Arm(_options.ToolTimeout);
            await worker.Events.FlushAsync().ConfigureAwait(false);
            return new(await pending.ConfigureAwait(false), Permanent: false);
        }
        catch (OperationCanceledException) when (cancellation.TimedOut)
        {
            return new(ToolResult.Failure($"{command.ToolKind}: timed out after {_options.ToolTimeout.TotalMilliseconds:0} ms.", transient: true), Permanent: false);
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            return new(ToolResult.Failure($"{command.ToolKind}: cancelled at the shutdown deadline.", transient: true), Permanent: false);
        }
        catch (ToolInputException ex)
        {
            return new(ToolResult.Failure(ex.Message), Permanent: true);
        }
        catch (Exception ex)
        {
            return new(ToolResult.Failure($"{command.ToolKind}: {ex.GetType().Name}: {ex.Message}", IsTransient(ex)), Permanent: false);
        }
        finally
        {
            cancellation.End();
        }
    }

    private static bool IsTransient(Exception ex) => ex is TransientToolException or HttpRequestException or TimeoutException;

    // ---- Settle: the one place a handle's fate is carried out --------------------------------

    private enum Settlement
    {
        Ack,
        Nack,
        Terminate,
    }

    private async ValueTask SettleAsync(WorkItem<THandle> item, Settlement settlement, TimeSpan delay = default, string? reason = null)
    {
        if (settlement != Settlement.Ack && item.TracksId)
        {
            // Forget before the nack, so the redelivery is not mistaken for a duplicate.
            _recent!.Forget(item.Outcome.Command!.CommandId);
        }

        // Count first: the call is made exactly once whether or not it throws.
        var token = _abort.Token;
        try
        {
            switch (settlement)
            {
                case Settlement.Ack:
                    Stats.Increment(StatCounter.Acked);
                    await _source.Source.AckAsync(item.Handle, token).ConfigureAwait(false);
                    break;
                case Settlement.Nack:
                    Stats.Increment(StatCounter.Nacked);
                    if (_source.DelayedNack is { } delayed && delay > TimeSpan.Zero)
                    {
                        await delayed.NackAsync(item.Handle, delay, token).ConfigureAwait(false);
                    }
                    else
                    {
                        await _source.Source.NackAsync(item.Handle, token).ConfigureAwait(false);
                    }

                    break;
                default:
                    Stats.Increment(StatCounter.Terminated);
                    await _source.Terminate!.TerminateAsync(item.Handle, reason ?? "terminated", token).ConfigureAwait(false);
                    break;
            }
        }
        catch (Exception ex)
        {
            Stats.Increment(StatCounter.SettleErrors);
            _logger.LogWarning(ex, "{Settlement} of {CommandId} failed; the source's redelivery decides what happens to it.", settlement, item.Outcome.Command?.CommandId);
        }

        Stats.Latency.Record(_time.GetElapsedTime(item.PulledAt));
    }

    private TimeSpan DelayFor(Command? command) => _options.NackBackoff.DelayFor(command?.Attempts ?? 0);

    // ---- Emit ------------------------------------------------------------------------------

    private void Emit(Worker worker, Command? command, string eventType, string status, TimeSpan? duration = null, System.Text.Json.JsonElement result = default, string? error = null, DateTimeOffset? createdAt = null)
    {
        worker.Events.Add(new PipelineEvent
        {
            EventType = eventType,
            Status = status,
            CreatedAt = createdAt ?? _time.GetUtcNow(),
            ExecutionId = command?.ExecutionId ?? 0,
            Step = command?.Step,
            CommandId = command?.CommandId,
            ToolKind = command?.ToolKind,
            WorkerId = _options.WorkerId,
            Attempts = command?.Attempts ?? 0,
            DurationMs = duration?.TotalMilliseconds,
            Result = result,
            Error = error,
        });
    }

    private async Task EmitWorkerAsync()
    {
        var reader = _eventQueue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var batch))
            {
                try
                {
                    await WriteBatchAsync(batch.Memory).ConfigureAwait(false);
                }
                finally
                {
                    // Cleared on return so the pool does not keep results and strings alive.
                    batch.Return();
                }
            }
        }
    }

    private async ValueTask WriteBatchAsync(ReadOnlyMemory<PipelineEvent> batch)
    {
        try
        {
            // Straight to the sink while it succeeds; Polly's retries take over from the first failure.
            try
            {
                await _sink.WriteAsync(batch, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception first) when (_emitResilience is not null)
            {
                var replay = new ReplayFirstOutcome<IEventSink, ReadOnlyMemory<PipelineEvent>, bool>(
                    _sink, batch, Outcome.FromException<bool>(first), static async (sink, batch, token) =>
                    {
                        await sink.WriteAsync(batch, token).ConfigureAwait(false);
                        return true;
                    });
                await _emitResilience.ExecuteAsync(static (state, token) => state.NextAsync(token), replay, CancellationToken.None).ConfigureAwait(false);
            }

            Stats.Add(StatCounter.EventsEmitted, batch.Length);
        }
        catch (Exception ex)
        {
            // Events are freshness, never the truth: after the retries, count and move on.
            Stats.Add(StatCounter.EventsDropped, batch.Length);
            _logger.LogError(ex, "The event sink failed; {Count} events dropped.", batch.Length);
        }
    }

    // ---- Plumbing --------------------------------------------------------------------------

    private static Channel<T> CreateQueue<T>(BlockOptions block, int singleWriter) =>
        Channel.CreateBounded<T>(new BoundedChannelOptions(block.Capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = block.Parallelism == 1,
            SingleWriter = singleWriter == 1,
        });

    private static ValueTask WriteAsync<T>(Channel<T> queue, T item) =>
        queue.Writer.TryWrite(item) ? ValueTask.CompletedTask : queue.Writer.WriteAsync(item, CancellationToken.None);

    /// <summary>Passes an item to the next block; before waiting on a full queue, lets the worker's events go.</summary>
    private static async ValueTask ForwardAsync(Channel<WorkItem<THandle>> queue, WorkItem<THandle> item, Worker worker)
    {
        if (queue.Writer.TryWrite(item))
        {
            return;
        }

        await worker.Events.FlushAsync().ConfigureAwait(false);
        await queue.Writer.WriteAsync(item, CancellationToken.None).ConfigureAwait(false);
    }

    private async Task DrainAsync(ChannelReader<WorkItem<THandle>> reader, Func<WorkItem<THandle>, Worker, ValueTask> handle, Worker worker)
    {
        using (worker)
        {
            do
            {
                while (reader.TryRead(out var item))
                {
                    try
                    {
                        await handle(item, worker).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        // The handlers settle on every path they know; this is a bug. Keep the worker
                        // alive so the pipeline still drains instead of stalling behind a dead block.
                        Stats.Increment(StatCounter.InternalErrors);
                        _logger.LogCritical(ex, "A block worker failed on {CommandId}; its handle may be left unsettled.", item.Outcome.Command?.CommandId);
                    }

                    if (worker.Events.IsFull)
                    {
                        await worker.Events.FlushAsync().ConfigureAwait(false);
                    }
                }

                // About to wait (or done): the events gathered so far go now.
                await worker.Events.FlushAsync().ConfigureAwait(false);
            }
            while (await reader.WaitToReadAsync().ConfigureAwait(false));
        }
    }

    private Worker NewWorker(bool tools) => new(
        new EventBuffer(_eventQueue.Writer, _options.EmitBatchSize),
        tools ? new ToolCancellation(_time, _abort.Token) : null);

    private static Task RunWorkers(int count, Func<Task> worker)
    {
        var workers = new Task[count];
        for (var i = 0; i < count; i++)
        {
            workers[i] = Task.Run(worker);
        }

        return Task.WhenAll(workers);
    }

    private ResiliencePipeline<Pulled<THandle>?> BuildPullResilience()
    {
        var backoff = _options.PullErrorBackoff;
        return new ResiliencePipelineBuilder<Pulled<THandle>?> { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions<Pulled<THandle>?>
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = backoff.Base,
                MaxDelay = backoff.Max,
                UseJitter = true,
                ShouldHandle = args => new ValueTask<bool>(
                    args.Outcome.Exception is { } ex && !(ex is OperationCanceledException && _stopping.IsCancellationRequested)),
                OnRetry = args =>
                {
                    Stats.Increment(StatCounter.PullErrors);
                    _logger.LogWarning(args.Outcome.Exception, "NextAsync failed; retrying in {Delay}.", args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    private ResiliencePipeline<ToolAttempt> BuildToolRetry() =>
        new ResiliencePipelineBuilder<ToolAttempt> { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions<ToolAttempt>
            {
                MaxRetryAttempts = Math.Max(1, _options.ToolRetries),
                BackoffType = DelayBackoffType.Exponential,
                Delay = _options.ToolRetryDelay,
                UseJitter = true,
                ShouldHandle = static args => new ValueTask<bool>(
                    args.Outcome.Exception is null && args.Outcome.Result is { Permanent: false, Result: { IsSuccess: false, IsTransient: true } }),
            })
            .Build();

    private ResiliencePipeline<bool>? BuildEmitResilience() =>
        _options.EmitRetries == 0
            ? null
            : new ResiliencePipelineBuilder<bool> { TimeProvider = _time }
                .AddRetry(new RetryStrategyOptions<bool>
                {
                    MaxRetryAttempts = _options.EmitRetries,
                    BackoffType = DelayBackoffType.Exponential,
                    Delay = _options.EmitRetryBackoff.Base,
                    MaxDelay = _options.EmitRetryBackoff.Max,
                    ShouldHandle = new PredicateBuilder<bool>().Handle<Exception>(),
                    OnRetry = args =>
                    {
                        _logger.LogWarning(args.Outcome.Exception, "The event sink failed; retrying in {Delay}.", args.RetryDelay);
                        return ValueTask.CompletedTask;
                    },
                })
                .Build();

    /// <summary>What one tool run produced, and whether a retry or redelivery could change it.</summary>
    private readonly record struct ToolAttempt(ToolResult Result, bool Permanent);

    /// <summary>One block worker's own state: its event batch, and for Dispatch its tool cancellation.</summary>
    private sealed class Worker(EventBuffer events, ToolCancellation? tools) : IDisposable
    {
        public EventBuffer Events { get; } = events;

        public ToolCancellation? Tools { get; } = tools;

        public void Dispose() => Tools?.Dispose();
    }

    /// <summary>Renews an unsettled handle while its tool runs, for sources whose deliveries expire.</summary>
    private sealed class KeepAlive : IDisposable
    {
        private readonly SourceCapabilities<THandle> _source;
        private readonly THandle _handle;
        private readonly ILogger _logger;
        private readonly ITimer _timer;
        private volatile bool _disposed;

        private KeepAlive(SourceCapabilities<THandle> source, THandle handle, TimeProvider time, ILogger logger)
        {
            _source = source;
            _handle = handle;
            _logger = logger;
            var interval = source.KeepAlive!.KeepAliveInterval;
            _timer = time.CreateTimer(static state => ((KeepAlive)state!).Renew(), this, interval, interval);
        }

        public static KeepAlive? Start(SourceCapabilities<THandle> source, THandle handle, TimeProvider time, ILogger logger) =>
            source.KeepAlive is null ? null : new KeepAlive(source, handle, time, logger);

        public void Dispose()
        {
            _disposed = true;
            _timer.Dispose();
        }

        private async void Renew()
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                await _source.KeepAlive!.KeepAliveAsync(_handle, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _logger.LogWarning(ex, "Keep-alive of an in-flight delivery failed.");
            }
        }
    }
}
