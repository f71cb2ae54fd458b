using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Telemetry;
using Pipeline.Tools;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Pipeline.Engine;

/// <summary>
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
    private readonly Channel<PipelineEvent> _eventQueue;

    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abort;
    private readonly ResiliencePipeline<Pulled<THandle>?> _pullResilience;
    private readonly ResiliencePipeline<ToolResult> _toolResilience;
    private readonly ResiliencePipeline _emitResilience;
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
        _eventQueue = CreateQueue<PipelineEvent>(_options.Emit, singleWriter: 0);

        Stats = new PipelineStats(() => new QueueDepths(
            _claimQueue.Reader.Count, _decideQueue.Reader.Count, _dispatchQueue.Reader.Count, _eventQueue.Reader.Count));

        _pullResilience = BuildPullResilience();
        _toolResilience = BuildToolResilience();
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
        var dispatch = RunWorkers(_options.Dispatch.Parallelism, () => DrainAsync(_dispatchQueue.Reader, DispatchAsync));
        var decide = RunWorkers(_options.AckDecision.Parallelism, () => DrainAsync(_decideQueue.Reader, DecideAsync));
        var claim = RunWorkers(_options.Claim.Parallelism, () => DrainAsync(_claimQueue.Reader, ClaimAsync));
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
                next = await _pullResilience.ExecuteAsync(
                    static (source, token) => source.NextAsync(token), _source.Source, stopping).ConfigureAwait(false);
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
            PipelineTelemetry.Pulled.Add(1);

            // Once pulled, the item must reach a settle: write without a token (the Claim block drains).
            await WriteAsync(_claimQueue, new WorkItem<THandle>(pulled, _time.GetTimestamp())).ConfigureAwait(false);
        }
    }

    // ---- Claim -----------------------------------------------------------------------------

    private async ValueTask ClaimAsync(WorkItem<THandle> item)
    {
        if (item.Outcome.Kind == ClaimOutcomeKind.Claimed)
        {
            var commandId = item.Outcome.Command!.CommandId;
            if (_recent is not null)
            {
                if (!_recent.TryBegin(commandId))
                {
                    item.IsDuplicate = true;
                    await WriteAsync(_decideQueue, item).ConfigureAwait(false);
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

        await WriteAsync(_decideQueue, item).ConfigureAwait(false);
    }

    // ---- Ack-decision ----------------------------------------------------------------------

    private async ValueTask DecideAsync(WorkItem<THandle> item)
    {
        var outcome = item.Outcome;
        if (item.IsDuplicate)
        {
            await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
            Stats.Increment(StatCounter.Skipped);
            await EmitAsync(outcome.Command, EventTypes.CommandSkipped, EventStatus.Skipped, error: "duplicate delivery of a command this worker is running or has run").ConfigureAwait(false);
            return;
        }

        switch (outcome.Kind)
        {
            case ClaimOutcomeKind.Claimed:
                await EmitAsync(outcome.Command, EventTypes.CommandClaimed, EventStatus.Claimed).ConfigureAwait(false);
                if (_options.AckMode == AckMode.AckBeforeDispatch)
                {
                    await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
                    item.Settled = true;
                }

                await WriteAsync(_dispatchQueue, item).ConfigureAwait(false);
                return;

            case ClaimOutcomeKind.AlreadyClaimed:
                await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
                Stats.Increment(StatCounter.Skipped);
                await EmitAsync(outcome.Command, EventTypes.CommandSkipped, EventStatus.Skipped, error: "already claimed by another worker").ConfigureAwait(false);
                return;

            case ClaimOutcomeKind.RetryLater:
                await SettleAsync(item, Settlement.Nack, DelayFor(outcome.Command)).ConfigureAwait(false);
                Stats.Increment(StatCounter.ClaimRetries);
                await EmitAsync(outcome.Command, EventTypes.ClaimRetry, EventStatus.Retry, error: outcome.Reason).ConfigureAwait(false);
                return;

            default:
                var terminate = _options.FailedClaimAction == FailedClaimAction.Terminate && _source.Terminate is not null;
                await SettleAsync(item, terminate ? Settlement.Terminate : Settlement.Nack, DelayFor(outcome.Command), outcome.Reason).ConfigureAwait(false);
                Stats.Increment(StatCounter.ClaimFailures);
                await EmitAsync(outcome.Command, EventTypes.ClaimFailed, EventStatus.Failed, error: outcome.Reason).ConfigureAwait(false);
                return;
        }
    }

    // ---- Dispatch --------------------------------------------------------------------------

    private async ValueTask DispatchAsync(WorkItem<THandle> item)
    {
        var command = item.Outcome.Command!;
        await EmitAsync(command, EventTypes.CommandStarted, EventStatus.Started).ConfigureAwait(false);

        var started = _time.GetTimestamp();
        ToolResult result;
        bool permanent;
        using (var activity = PipelineTelemetry.ActivitySource.StartActivity("pipeline.dispatch", ActivityKind.Consumer))
        {
            activity?.SetTag("pipeline.command_id", command.CommandId);
            activity?.SetTag("pipeline.execution_id", command.ExecutionId);
            activity?.SetTag("pipeline.tool_kind", command.ToolKind);
            using var keepAlive = item.Settled ? null : KeepAlive.Start(_source, item.Handle, _time, _logger);
            (result, permanent) = await RunToolAsync(command).ConfigureAwait(false);
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
            PipelineTelemetry.Completed.Add(1);
            if (!item.Settled)
            {
                await SettleAsync(item, Settlement.Ack).ConfigureAwait(false);
            }

            await EmitAsync(command, EventTypes.CommandCompleted, EventStatus.Completed, duration, result.Value).ConfigureAwait(false);
            return;
        }

        Stats.Increment(StatCounter.Failed);
        PipelineTelemetry.Failed.Add(1);
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

        await EmitAsync(command, EventTypes.CommandFailed, EventStatus.Failed, duration, result.Value, error).ConfigureAwait(false);
    }

    private async ValueTask<(ToolResult Result, bool Permanent)> RunToolAsync(Command command)
    {
        if (!_tools.TryGet(command.ToolKind, out var tool))
        {
            return (ToolResult.Failure($"unknown tool_kind '{command.ToolKind}'; registered tools: {_tools.KnownKinds}."), true);
        }

        var context = ResilienceContextPool.Shared.Get(_abort.Token);
        try
        {
            var outcome = await _toolResilience.ExecuteOutcomeAsync(
                static async (ctx, state) =>
                {
                    try
                    {
                        return Outcome.FromResult(await state.tool.InvokeAsync(state.command, ctx.CancellationToken).ConfigureAwait(false));
                    }
                    catch (Exception ex)
                    {
                        return Outcome.FromException<ToolResult>(ex);
                    }
                },
                context,
                (tool, command)).ConfigureAwait(false);

            return outcome.Exception switch
            {
                null => (outcome.Result, false),
                TimeoutRejectedException => (ToolResult.Failure($"{command.ToolKind}: timed out after {_options.ToolTimeout.TotalMilliseconds:0} ms.", transient: true), false),
                OperationCanceledException when _abort.IsCancellationRequested => (ToolResult.Failure($"{command.ToolKind}: cancelled at the shutdown deadline.", transient: true), false),
                ToolInputException ex => (ToolResult.Failure(ex.Message), true),
                var ex => (ToolResult.Failure($"{command.ToolKind}: {ex.GetType().Name}: {ex.Message}", IsTransient(ex)), false),
            };
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
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
                    PipelineTelemetry.Acked.Add(1);
                    await _source.Source.AckAsync(item.Handle, token).ConfigureAwait(false);
                    break;
                case Settlement.Nack:
                    Stats.Increment(StatCounter.Nacked);
                    PipelineTelemetry.Nacked.Add(1);
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
                    PipelineTelemetry.Terminated.Add(1);
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

    private ValueTask EmitAsync(Command? command, string eventType, string status, TimeSpan? duration = null, System.Text.Json.JsonElement result = default, string? error = null)
    {
        var e = new PipelineEvent
        {
            EventType = eventType,
            Status = status,
            CreatedAt = _time.GetUtcNow(),
            ExecutionId = command?.ExecutionId ?? 0,
            Step = command?.Step,
            CommandId = command?.CommandId,
            ToolKind = command?.ToolKind,
            WorkerId = _options.WorkerId,
            Attempts = command?.Attempts ?? 0,
            DurationMs = duration?.TotalMilliseconds,
            Result = result,
            Error = error,
        };
        return WriteAsync(_eventQueue, e);
    }

    private async Task EmitWorkerAsync()
    {
        var batchSize = _options.EmitBatchSize;
        var buffer = ArrayPool<PipelineEvent>.Shared.Rent(batchSize);
        var reader = _eventQueue.Reader;
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                var count = 0;
                while (count < batchSize && reader.TryRead(out buffer[count]))
                {
                    count++;
                }

                await WriteBatchAsync(buffer.AsMemory(0, count)).ConfigureAwait(false);
            }
        }
        finally
        {
            // Clear so the pool does not keep results and strings alive.
            ArrayPool<PipelineEvent>.Shared.Return(buffer, clearArray: true);
        }
    }

    private async ValueTask WriteBatchAsync(ReadOnlyMemory<PipelineEvent> batch)
    {
        try
        {
            await _emitResilience.ExecuteAsync(static (state, token) => state.sink.WriteAsync(state.batch, token), (sink: _sink, batch), CancellationToken.None).ConfigureAwait(false);
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

    private static async Task DrainAsync<T>(ChannelReader<T> reader, Func<T, ValueTask> handle)
    {
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                await handle(item).ConfigureAwait(false);
            }
        }
    }

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

    private ResiliencePipeline<ToolResult> BuildToolResilience()
    {
        var builder = new ResiliencePipelineBuilder<ToolResult> { TimeProvider = _time }
            .AddTimeout(_options.ToolTimeout);
        if (_options.ToolRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<ToolResult>
            {
                MaxRetryAttempts = _options.ToolRetries,
                BackoffType = DelayBackoffType.Exponential,
                Delay = _options.ToolRetryDelay,
                UseJitter = true,
                ShouldHandle = static args => new ValueTask<bool>(args.Outcome switch
                {
                    { Exception: TransientToolException or HttpRequestException or TimeoutException } => true,
                    { Exception: null, Result: { IsSuccess: false, IsTransient: true } } => true,
                    _ => false,
                }),
            });
        }

        return builder.Build();
    }

    private ResiliencePipeline BuildEmitResilience() =>
        new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = 3,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(500),
                MaxDelay = TimeSpan.FromSeconds(10),
                ShouldHandle = new PredicateBuilder().Handle<Exception>(),
            })
            .Build();

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
