using System.Collections.Concurrent;

namespace Pipeline.Nats.Tests.Support;

/// <summary>A tool that always fails, transiently (so after-dispatch mode redelivers it).</summary>
internal sealed class FailingTool : ITool
{
    private int _calls;

    public string Kind => "fail";

    public int Calls => Volatile.Read(ref _calls);

    public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return new(ToolResult.Failure("always fails", transient: true));
    }
}

/// <summary>A tool that takes a fixed time (or the command's <c>input.ms</c>), counting its runs per command.</summary>
internal sealed class SlowTool(TimeSpan duration) : ITool
{
    private readonly ConcurrentDictionary<string, int> _runs = new();

    public string Kind => "slow";

    public IReadOnlyDictionary<string, int> Runs => _runs;

    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        _runs.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
        var ms = command.Input.ValueKind == JsonValueKind.Object && command.Input.TryGetProperty("ms", out var value) ? TimeSpan.FromMilliseconds(value.GetInt32()) : duration;
        if (ms > TimeSpan.Zero)
        {
            await Task.Delay(ms, cancellationToken);
        }

        return ToolResult.Success();
    }
}

/// <summary>The source as it is, noting when each renewal was sent: a failure can then say how long the renewals stalled.</summary>
internal sealed class RenewalClock(Pipeline.Nats.Sources.NatsCommandSource source) :
    Pipeline.Sources.ICommandSource<Pipeline.Nats.Sources.NatsHandle>,
    Pipeline.Sources.ISupportsDelayedNack<Pipeline.Nats.Sources.NatsHandle>,
    Pipeline.Sources.ISupportsTerminate<Pipeline.Nats.Sources.NatsHandle>,
    Pipeline.Sources.ISupportsKeepAlive<Pipeline.Nats.Sources.NatsHandle>
{
    private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();
    private readonly ConcurrentQueue<long> _renewals = new();

    public TimeSpan KeepAliveInterval => source.KeepAliveInterval;

    /// <summary>The longest stretch without a renewal sent, from the start to the last renewal.</summary>
    public TimeSpan LongestGap
    {
        get
        {
            var previous = _start;
            var longest = 0L;
            foreach (var at in _renewals)
            {
                longest = Math.Max(longest, at - previous);
                previous = at;
            }

            return TimeSpan.FromSeconds((double)longest / System.Diagnostics.Stopwatch.Frequency);
        }
    }

    public ValueTask<Pipeline.Commands.Pulled<Pipeline.Nats.Sources.NatsHandle>?> NextAsync(CancellationToken cancellationToken) => source.NextAsync(cancellationToken);

    public ValueTask AckAsync(Pipeline.Nats.Sources.NatsHandle handle, CancellationToken cancellationToken) => source.AckAsync(handle, cancellationToken);

    public ValueTask NackAsync(Pipeline.Nats.Sources.NatsHandle handle, CancellationToken cancellationToken) => source.NackAsync(handle, cancellationToken);

    public ValueTask NackAsync(Pipeline.Nats.Sources.NatsHandle handle, TimeSpan delay, CancellationToken cancellationToken) => source.NackAsync(handle, delay, cancellationToken);

    public ValueTask TerminateAsync(Pipeline.Nats.Sources.NatsHandle handle, string reason, CancellationToken cancellationToken) => source.TerminateAsync(handle, reason, cancellationToken);

    public async ValueTask KeepAliveAsync(Pipeline.Nats.Sources.NatsHandle handle, CancellationToken cancellationToken)
    {
        await source.KeepAliveAsync(handle, cancellationToken);
        _renewals.Enqueue(System.Diagnostics.Stopwatch.GetTimestamp());
    }
}

/// <summary>What the Claim block hands a claimer, as the JetStream source describes a delivery.</summary>
internal static class ClaimContexts
{
    /// <summary>
    /// <paramref name="command"/> delivered from stream sequence <paramref name="streamSequence"/> (as
    /// <see cref="NatsCommandSource"/> describes it); no delivery information when the sequence is null.
    /// </summary>
    public static Pipeline.Claiming.ClaimContext Delivered(Command command, ulong? streamSequence = null) =>
        new(ClaimOutcome.Claimed(command), streamSequence is { } sequence ? new NatsDelivery("test.commands", sequence, ConsumerSequence: sequence, NumDelivered: 1) : null);
}
