namespace Pipeline.Tests.Support;

/// <summary>
/// Hangs that ignore their token: while the budget lasts a hang lasts until <see cref="Release"/>
/// (or, with no budget for endless hangs, for a bounded time); counts those in progress.
/// </summary>
internal sealed class Hangs(bool endless, int budget)
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _taken;
    private int _inProgress;

    /// <summary>Endless hangs begun.</summary>
    public int Begun => Math.Min(Volatile.Read(ref _taken), budget);

    /// <summary>Hangs (endless or bounded) in progress now.</summary>
    public int InProgress => Volatile.Read(ref _inProgress);

    /// <summary>Ends every endless hang, now and later.</summary>
    public void Release() => _release.TrySetResult();

    /// <summary>
    /// Hangs ignoring any token: until released when endless and within budget (or
    /// <paramref name="forced"/>), else for <paramref name="bounded"/>.
    /// </summary>
    public async Task HangAsync(TimeSpan bounded, bool forced = false)
    {
        Interlocked.Increment(ref _inProgress);
        try
        {
            if (endless && (forced || Interlocked.Increment(ref _taken) <= budget))
            {
                await _release.Task.ConfigureAwait(false);
            }
            else
            {
                await Task.Delay(bounded).ConfigureAwait(false);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _inProgress);
        }
    }
}

/// <summary>What a claimer does with one claim.</summary>
internal enum ClaimBehaviour : byte
{
    Claim,
    ClaimAsync,
    AlreadyClaimed,
    RetryLater,
    RetryLaterWithoutCommand,
    Failed,
    FailedWithoutCommand,
    Default,
    Throw,
    ThrowAsync,

    /// <summary>Claims after a few milliseconds, honouring its token.</summary>
    Slow,

    /// <summary>Hangs ignoring its token (see <see cref="Hangs"/>), then claims.</summary>
    Hang,

    /// <summary>Hangs ignoring its token, outside the budget (the run is sure to have one), then answers <c>AlreadyClaimed</c>: a claim store that answers late.</summary>
    HangForced,
}

/// <summary>A claimer that does, for each command, what the test's plan says.</summary>
internal sealed class HostileClaimer(Func<Command, ClaimBehaviour> behaviourOf, Hangs hangs) : IClaimer
{
    public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
    {
        var command = context.Command!;
        return behaviourOf(command) switch
        {
            ClaimBehaviour.Claim => new(ClaimOutcome.Claimed(command)),
            ClaimBehaviour.ClaimAsync => LaterAsync(command),
            ClaimBehaviour.AlreadyClaimed => new(ClaimOutcome.AlreadyClaimed(command)),
            ClaimBehaviour.RetryLater => new(ClaimOutcome.RetryLater("claim store busy", command)),
            ClaimBehaviour.RetryLaterWithoutCommand => new(ClaimOutcome.RetryLater("claim store busy")),
            ClaimBehaviour.Failed => new(ClaimOutcome.Failed("claim refused", command)),
            ClaimBehaviour.FailedWithoutCommand => new(ClaimOutcome.Failed("claim refused")),
            ClaimBehaviour.Default => new(default(ClaimOutcome)),
            ClaimBehaviour.Throw => throw new InvalidOperationException("injected claimer exception"),
            ClaimBehaviour.ThrowAsync => ValueTask.FromException<ClaimOutcome>(new TimeoutException("injected claimer exception (async)")),
            ClaimBehaviour.Slow => SlowAsync(command, cancellationToken),
            ClaimBehaviour.Hang => HangAsync(command, forced: false),
            _ => HangAsync(command, forced: true),
        };
    }

    private static async ValueTask<ClaimOutcome> LaterAsync(Command command)
    {
        await Task.Yield();
        return ClaimOutcome.Claimed(command);
    }

    private static async ValueTask<ClaimOutcome> SlowAsync(Command command, CancellationToken cancellationToken)
    {
        await Task.Delay(2, cancellationToken).ConfigureAwait(false);
        return ClaimOutcome.Claimed(command);
    }

    private async ValueTask<ClaimOutcome> HangAsync(Command command, bool forced)
    {
        await hangs.HangAsync(TimeSpan.FromMilliseconds(40), forced).ConfigureAwait(false);
        return forced ? ClaimOutcome.AlreadyClaimed(command) : ClaimOutcome.Claimed(command);
    }
}

/// <summary>The tool kinds of <see cref="HostileTools"/>: each behaves as its name says.</summary>
internal static class HostileToolKinds
{
    /// <summary>Succeeds synchronously.</summary>
    public const string Ok = "ok";

    /// <summary>Succeeds after going asynchronous.</summary>
    public const string OkAsync = "ok-async";

    /// <summary>Succeeds after a few milliseconds, honouring its token.</summary>
    public const string Slow = "slow";

    /// <summary>Returns a permanent failure.</summary>
    public const string Fail = "fail";

    /// <summary>Throws synchronously.</summary>
    public const string Throw = "throw";

    /// <summary>Returns a faulted task.</summary>
    public const string ThrowAsync = "throw-async";

    /// <summary>Returns a transient failure (retried in process).</summary>
    public const string Transient = "transient";

    /// <summary>Throws <see cref="TransientToolException"/> after going asynchronous.</summary>
    public const string TransientThrow = "transient-throw";

    /// <summary>Waits for its token: ends at its per-attempt timeout (or the deadline).</summary>
    public const string Timeout = "timeout";

    /// <summary>Throws <see cref="OperationCanceledException"/> on its own, its token not cancelled.</summary>
    public const string SpuriousCancel = "spurious-cancel";

    /// <summary>Hangs ignoring its token: endlessly within the hang budget of a run that stops, else for a bounded time.</summary>
    public const string Hang = "hang";

    /// <summary>Hangs ignoring its token, outside the budget.</summary>
    public const string HangForced = "hang-forced";

    /// <summary>No tool has this kind.</summary>
    public const string Unknown = "no-such-tool";
}

/// <summary>The tools of <see cref="HostileToolKinds"/>, with counters the test uses to check its scenario.</summary>
internal sealed class HostileTools(Hangs hangs)
{
    private int _timedOut;

    /// <summary>Invocations of <see cref="HostileToolKinds.Timeout"/> (and over-budget hangs) that ended by their token.</summary>
    public int TimedOut => Volatile.Read(ref _timedOut);

    public ToolRegistry Registry() => new(
    [
        new ScriptedTool(HostileToolKinds.Ok, static (_, _) => new ValueTask<ToolResult>(ToolResult.Success())),
        new ScriptedTool(HostileToolKinds.OkAsync, static async (_, _) =>
        {
            await Task.Yield();
            return ToolResult.Success();
        }),
        new ScriptedTool(HostileToolKinds.Slow, static async (_, ct) =>
        {
            await Task.Delay(2, ct).ConfigureAwait(false);
            return ToolResult.Success();
        }),
        new ScriptedTool(HostileToolKinds.Fail, static (_, _) => new ValueTask<ToolResult>(ToolResult.Failure("injected failure"))),
        new ScriptedTool(HostileToolKinds.Throw, static (_, _) => throw new InvalidOperationException("injected tool exception")),
        new ScriptedTool(HostileToolKinds.ThrowAsync, static (_, _) => ValueTask.FromException<ToolResult>(new InvalidOperationException("injected tool exception (async)"))),
        new ScriptedTool(HostileToolKinds.Transient, static (_, _) => new ValueTask<ToolResult>(ToolResult.Failure("injected transient failure", transient: true))),
        new ScriptedTool(HostileToolKinds.TransientThrow, static async (_, _) =>
        {
            await Task.Yield();
            throw new TransientToolException("injected transient exception");
        }),
        new ScriptedTool(HostileToolKinds.Timeout, (_, ct) => WaitForTokenAsync(ct)),
        new ScriptedTool(HostileToolKinds.SpuriousCancel, static (_, _) => throw new OperationCanceledException("injected cancellation, token not cancelled")),
        new ScriptedTool(HostileToolKinds.Hang, (_, _) => HangAsync(forced: false)),
        new ScriptedTool(HostileToolKinds.HangForced, (_, _) => HangAsync(forced: true)),
    ]);

    private async ValueTask<ToolResult> WaitForTokenAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            return ToolResult.Success();
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _timedOut);
            throw;
        }
    }

    private async ValueTask<ToolResult> HangAsync(bool forced)
    {
        await hangs.HangAsync(TimeSpan.FromMilliseconds(40), forced).ConfigureAwait(false);
        return ToolResult.Success();
    }
}

/// <summary>How an event sink behaves for a whole run.</summary>
internal enum SinkBehaviour
{
    /// <summary>Takes every batch at once.</summary>
    Fast,

    /// <summary>Takes every batch after a small delay (honouring its token).</summary>
    Slow,

    /// <summary>Mostly fast, but now and then blocks for a while ignoring its token (sometimes blocking its thread).</summary>
    Blocking,

    /// <summary>Every write throws: the downstream is dead.</summary>
    Dead,
}

/// <summary>An event sink that behaves as <see cref="SinkBehaviour"/> says; counts writes and events taken.</summary>
internal sealed class HostileSink(SinkBehaviour behaviour, long seed) : IEventSink
{
    private long _writes;
    private long _events;
    private int _blocks;

    public long Writes => Volatile.Read(ref _writes);

    public long EventsTaken => Volatile.Read(ref _events);

    /// <summary>Writes that blocked for a while.</summary>
    public int Blocks => Volatile.Read(ref _blocks);

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        var write = Interlocked.Increment(ref _writes);
        switch (behaviour)
        {
            case SinkBehaviour.Dead:
                return write % 2 == 0
                    ? throw new IOException("injected dead sink")
                    : ValueTask.FromException(new IOException("injected dead sink (async)"));
            case SinkBehaviour.Slow:
                return SlowAsync(batch.Length, cancellationToken);
            case SinkBehaviour.Blocking:
                var roll = Draw.Unit(seed, -7, write);
                if (roll < 0.004)
                {
                    Interlocked.Increment(ref _blocks);
                    return BlockAsync(batch.Length, TimeSpan.FromMilliseconds(50 + (roll * 25_000)));
                }

                if (roll < 0.006)
                {
                    Interlocked.Increment(ref _blocks);
                    Thread.Sleep(10 + (int)(roll * 5_000)); // blocks its thread, token or no token
                }

                break;
        }

        Interlocked.Add(ref _events, batch.Length);
        return ValueTask.CompletedTask;
    }

    private async ValueTask SlowAsync(int events, CancellationToken cancellationToken)
    {
        await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _events, events);
    }

    private async ValueTask BlockAsync(int events, TimeSpan block)
    {
        await Task.Delay(block).ConfigureAwait(false);
        Interlocked.Add(ref _events, events);
    }
}
