using System.Diagnostics;
using System.Runtime.CompilerServices;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Events;
using Pipeline.Telemetry;
using Pipeline.Tools;
using Polly;
using Polly.Retry;

namespace Pipeline.Engine.Stages;

/// <summary>
/// Dispatch: runs the command's tool under its per-attempt timeout and the shutdown deadline,
/// retries transient failures in process (Polly), and with ack after dispatch settles the handle:
/// ack on success, nack with backoff on a retryable failure, terminate (or ack) when given up.
/// When a tool does not finish at once, the events so far go to Emit while it runs.
/// </summary>
internal sealed class DispatchStage<THandle>
{
    public const string Name = "Dispatch";

    private readonly PipelineRuntime<THandle> _runtime;
    private readonly ToolRegistry _tools;
    private readonly EmitStage<THandle> _emit;
    private readonly StageBlock<Delivery<THandle>> _block;
    private readonly ResiliencePipeline<ToolAttempt> _retry;

    public DispatchStage(PipelineRuntime<THandle> runtime, ToolRegistry tools, EmitStage<THandle> emit)
    {
        _runtime = runtime;
        _tools = tools;
        _emit = emit;
        _retry = BuildRetry(runtime);
        _block = new StageBlock<Delivery<THandle>>(DispatchAsync, runtime.Options.Dispatch.Parallelism);
        runtime.Redispatch = Post;
    }

    public Task Completion => _block.Completion;

    public void Fault(Exception exception) => _block.Fault(exception);

    public void Post(Delivery<THandle> delivery)
    {
        delivery.Position = DeliveryPosition.DispatchQueued;
        _runtime.Forward(_block, delivery, delivery, Name);
    }

    public void Complete() => _block.Complete();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask DispatchAsync(Delivery<THandle> delivery)
    {
        if (!delivery.TryTake(DeliveryPosition.DispatchQueued, DeliveryPosition.Dispatching))
        {
            // Handed back by the stop while it waited for a slot: its path has ended already. (It
            // may be back in the pool; after a stop no pull takes a delivery into this queue again.)
            return;
        }

        var runtime = _runtime;
        try
        {
            if (!await StartAsync(delivery).ConfigureAwait(false))
            {
                _emit.PostFinal(delivery);
                return;
            }

            var command = delivery.Command!;
            runtime.AddEvent(delivery, EventTypes.CommandClaimed, EventStatus.Claimed, createdAt: delivery.ClaimedAt);
            var startedAt = runtime.Time.GetUtcNow();
            runtime.AddEvent(delivery, EventTypes.CommandStarted, EventStatus.Started, createdAt: startedAt);

            var started = runtime.Time.GetTimestamp();
            ToolAttempt attempt;
            if (delivery.Span is { } span)
            {
                attempt = await RunTracedAsync(delivery, command, span).ConfigureAwait(false);
            }
            else
            {
                attempt = await RunToolAsync(delivery, command).ConfigureAwait(false);
            }

            var ended = runtime.Time.GetTimestamp();
            var duration = runtime.Time.GetElapsedTime(started, ended);
            runtime.Stats.MarkEnded(ended); // with ack before dispatch the last settle is a tool's start, not its end
            var result = attempt.Result;
            runtime.Telemetry.RecordProcess(duration, !result.IsSuccess);
            if (result.IsSuccess)
            {
                runtime.Stats.Increment(StatCounter.Completed);
                await runtime.RecordClaimOutcomeAsync(delivery, succeeded: true).ConfigureAwait(false);
                if (delivery.IsOpen)
                {
                    await runtime.Settler.SettleAsync(delivery, Settlement.Ack).ConfigureAwait(false);
                }

                runtime.AddEvent(delivery, EventTypes.CommandCompleted, EventStatus.Completed, duration, result.Value, createdAt: startedAt + duration);
            }
            else
            {
                var error = result.Error!;
                // Counted by what becomes of the command: a nacked one comes back (a retry), one
                // given up on (terminated, acked, or acked before dispatch) is a failure. Settled
                // already after dispatch means nacked by the hard deadline: it comes back too.
                var redelivered = delivery.IsOpen
                    ? !attempt.Permanent && command.Attempts + 1 < runtime.Options.MaxAttempts
                    : delivery.SettledAs == SettleAction.Nack;
                runtime.Stats.Increment(redelivered ? StatCounter.Retried : StatCounter.Failed);
                if (delivery.IsOpen)
                {
                    var tries = command.Attempts + 1;
                    var maxAttempts = runtime.Options.MaxAttempts;
                    Settlement settlement;
                    if (redelivered)
                    {
                        error = $"{error} (attempt {tries} of {maxAttempts}; redelivering)";
                        settlement = Settlement.Nack(runtime.DelayFor(command), error);
                        if (delivery.ClaimedElsewhere)
                        {
                            // A claim that cannot be released is still nacked: the command failed and
                            // is retried; a claimer that recognises its own claim grants it again.
                            await runtime.TryReleaseClaimAsync(delivery).ConfigureAwait(false);
                        }
                    }
                    else
                    {
                        error = attempt.Permanent ? $"{error} (not retryable; giving up)" : $"{error} (attempt {tries} of {maxAttempts}; giving up)";
                        settlement = runtime.Source.Terminate is not null ? Settlement.Terminate(error) : Settlement.Ack;
                        await runtime.RecordClaimOutcomeAsync(delivery, succeeded: false).ConfigureAwait(false);
                    }

                    await runtime.Settler.SettleAsync(delivery, settlement).ConfigureAwait(false);
                }
                else if (!redelivered)
                {
                    await runtime.RecordClaimOutcomeAsync(delivery, succeeded: false).ConfigureAwait(false);
                }

                runtime.AddEvent(delivery, EventTypes.CommandFailed, EventStatus.Failed, duration, result.Value, error, startedAt + duration);
            }
        }
        catch (Exception ex)
        {
            await runtime.InternalErrorAsync(delivery, ex, Name).ConfigureAwait(false);
        }

        _emit.PostFinal(delivery);
    }

    /// <summary>
    /// Whether the command's tool may start, settling what that decides. Past the hard deadline
    /// nothing starts, in either ack mode: an open delivery goes back (a slot freed by a cancelled
    /// tool must not start the next command only to cancel it too), and one the deadline's sweep
    /// nacked while it waited is not ours any more. With ack before dispatch (the claim is
    /// ownership) the ack goes out here, as the tool starts, not while the command waits for a
    /// slot: a command still queued when a stop cuts work off is nacked, never acked and dropped.
    /// </summary>
    private async ValueTask<bool> StartAsync(Delivery<THandle> delivery)
    {
        if (_runtime.Stopping.IsCancellationRequested && delivery.IsOpen && _runtime.CanHandBack(delivery)
            && await _runtime.TryHandBackAsync(delivery).ConfigureAwait(false))
        {
            return false; // a stop has begun and this one had not started: it went back for another worker
        }

        var ackNow = _runtime.Options.AckMode == AckMode.AckBeforeDispatch;
        var pastDeadline = _runtime.Abort.IsCancellationRequested;
        if (delivery.IsOpen && (ackNow || pastDeadline))
        {
            var settlement = pastDeadline ? Settlement.Nack(TimeSpan.Zero, "stopped before its tool started") : Settlement.Ack;
            await _runtime.Settler.SettleAsync(delivery, settlement).ConfigureAwait(false);
        }

        return ackNow ? delivery.SettledAs == SettleAction.Ack : delivery.IsOpen;
    }

    /// <summary>
    /// The tool run inside a <see cref="PipelineTelemetry.DispatchSpanName"/> span under the item's
    /// <c>process</c> span, which is the current span meanwhile: what the tool calls (HTTP) joins the trace.
    /// </summary>
    private async ValueTask<ToolAttempt> RunTracedAsync(Delivery<THandle> delivery, Command command, Activity span)
    {
        // Restored when this method returns: the block's thread keeps no span.
        Activity.Current = span;
        using var activity = PipelineTelemetry.ActivitySource.StartActivity(PipelineTelemetry.DispatchSpanName, ActivityKind.Internal);
        activity?.SetTag("pipeline.tool_kind", command.ToolKind);
        var attempt = await RunToolAsync(delivery, command).ConfigureAwait(false);
        if (!attempt.Result.IsSuccess)
        {
            activity?.SetStatus(ActivityStatusCode.Error, attempt.Result.Error);
        }

        return attempt;
    }

    // Pooled builders: with a slow tool every dispatch suspends here, and a fresh box each time
    // would be most of its garbage.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ToolAttempt> RunToolAsync(Delivery<THandle> delivery, Command command)
    {
        if (!_tools.TryGet(command.ToolKind, out var tool))
        {
            return new(ToolResult.Failure($"unknown tool_kind '{command.ToolKind}'; registered tools: {_tools.KnownKinds}."), Permanent: true);
        }

        var first = await AttemptAsync(tool, delivery).ConfigureAwait(false);
        if (first.Result.IsSuccess || first.Permanent || !first.Result.IsTransient || _runtime.Options.ToolRetries == 0)
        {
            return first;
        }

        // The rare path: Polly retries the transient failure, with backoff, replaying the first attempt.
        var retry = new ReplayFirstOutcome<DispatchStage<THandle>, (ITool Tool, Delivery<THandle> Delivery), ToolAttempt>(
            this, (tool, delivery), Outcome.FromResult(first), static (stage, a, _) => stage.AttemptAsync(a.Tool, a.Delivery));
        var context = ResilienceContextPool.Shared.Get(_runtime.Abort);
        try
        {
            var outcome = await _retry.ExecuteOutcomeAsync(
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
    private async ValueTask<ToolAttempt> AttemptAsync(ITool tool, Delivery<THandle> delivery)
    {
        var command = delivery.Command!;
        var cancellation = delivery.Tools ??= new ToolCancellation(_runtime.Time, _runtime.Abort);
        var token = cancellation.Begin();
        try
        {
            var pending = tool.InvokeAsync(command, token);
            if (pending.IsCompleted)
            {
                return new(pending.Result, Permanent: false);
            }

            // The tool went asynchronous: start its clock, and let the events so far out while it runs.
            cancellation.Arm(_runtime.Options.ToolTimeout);
            _emit.PostEarly(delivery);
            return new(await pending.ConfigureAwait(false), Permanent: false);
        }
        catch (OperationCanceledException) when (cancellation.TimedOut)
        {
            return new(ToolResult.Failure($"{command.ToolKind}: timed out after {_runtime.Options.ToolTimeout.TotalMilliseconds:0} ms.", transient: true), Permanent: false);
        }
        catch (OperationCanceledException) when (_runtime.Abort.IsCancellationRequested)
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

    private static ResiliencePipeline<ToolAttempt> BuildRetry(PipelineRuntime<THandle> runtime) =>
        new ResiliencePipelineBuilder<ToolAttempt> { TimeProvider = runtime.Time }
            .AddRetry(new RetryStrategyOptions<ToolAttempt>
            {
                MaxRetryAttempts = Math.Max(1, runtime.Options.ToolRetries),
                BackoffType = DelayBackoffType.Exponential,
                Delay = runtime.Options.ToolRetryDelay,
                // Doubling from up to a day over up to 10 retries would pass the longest delay a timer takes.
                MaxDelay = SettingLimits.Longest,
                UseJitter = true,
                ShouldHandle = static args => new ValueTask<bool>(
                    args.Outcome.Exception is null && args.Outcome.Result is { Permanent: false, Result: { IsSuccess: false, IsTransient: true } }),
            })
            .Build();

    /// <summary>What one tool run produced, and whether a retry or redelivery could change it.</summary>
    private readonly record struct ToolAttempt(ToolResult Result, bool Permanent);
}
