using System.Collections.Concurrent;
using System.Text.Json;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;

namespace Pipeline.Nats.Tests.Support;

/// <summary>Publishing commands, running a pipeline until a condition, and reading the consumer's state from the server.</summary>
internal static class Harness
{
    public static Command Make(string id, string tool = "noop", string input = "{}", long execution = 7) => new()
    {
        CommandId = id,
        ExecutionId = execution,
        Step = "step",
        ToolKind = tool,
        Input = JsonDocument.Parse(input).RootElement.Clone(),
    };

    /// <summary>
    /// What the Claim block hands a claimer for <paramref name="command"/> delivered from stream
    /// sequence <paramref name="streamSequence"/> (as <see cref="Pipeline.Nats.Sources.NatsCommandSource"/>
    /// describes it); no delivery information when the sequence is null.
    /// </summary>
    public static Pipeline.Claiming.ClaimContext Delivered(Command command, ulong? streamSequence = null) =>
        new(ClaimOutcome.Claimed(command), streamSequence is { } sequence ? new Pipeline.Nats.Sources.NatsDelivery("test.commands", sequence, ConsumerSequence: sequence, NumDelivered: 1) : null);

    /// <summary>Publishes bodies to <paramref name="subject"/>, 256 acks in flight at a time; returns each one's stream sequence (from the server's ack).</summary>
    public static async Task<ulong[]> PublishAsync(NatsConnection connection, string subject, IReadOnlyList<byte[]> bodies)
    {
        var js = new NatsJSContext(connection);
        var sequences = new ulong[bodies.Count];
        for (var start = 0; start < bodies.Count; start += 256)
        {
            var window = Enumerable.Range(start, Math.Min(256, bodies.Count - start))
                .Select(async i =>
                {
                    var ack = await js.PublishAsync(subject, bodies[i]);
                    ack.EnsureSuccess();
                    sequences[i] = ack.Seq;
                })
                .ToArray();
            await Task.WhenAll(window);
        }

        return sequences;
    }

    public static Task<ulong[]> PublishAsync(NatsConnection connection, string subject, IEnumerable<Command> commands) =>
        PublishAsync(connection, subject, [.. commands.Select(c => System.Text.Encoding.UTF8.GetBytes(c.ToJson()))]);

    /// <summary>Creates the stream the test's source binds to (so it can be published to before the source starts).</summary>
    public static async Task CreateStreamAsync(NatsConnection connection, string stream, string subjects)
    {
        var js = new NatsJSContext(connection);
        await js.CreateStreamAsync(new StreamConfig(stream, [subjects]));
    }

    public static async Task<ConsumerInfo> ConsumerInfoAsync(NatsConnection connection, string stream, string consumer)
    {
        var js = new NatsJSContext(connection);
        var c = await js.GetConsumerAsync(stream, consumer);
        return c.Info;
    }

    /// <summary>Runs <paramref name="pipeline"/> until <paramref name="done"/> holds, then stops it and waits for it to drain.</summary>
    public static async Task RunUntilAsync<THandle>(CommandPipeline<THandle> pipeline, Func<bool> done, TimeSpan bound, string what, Func<string>? state = null)
    {
        var run = pipeline.RunAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow + bound;
        while (!done())
        {
            if (run.IsCompleted)
            {
                await run;
                Assert.Fail($"{what}: the run ended before the condition held ({state?.Invoke()})");
            }

            if (DateTime.UtcNow >= deadline)
            {
                pipeline.StopNow();
                await run.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s ({state?.Invoke()})");
            }

            await Task.Delay(10);
        }

        pipeline.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Waits until <paramref name="condition"/> holds, failing after <paramref name="bound"/>.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan bound, string what, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s ({state?.Invoke()})");
            }

            await Task.Delay(50);
        }
    }
}

/// <summary>Keeps every event; counts per command and type.</summary>
internal sealed class CountingSink : IEventSink
{
    private readonly ConcurrentQueue<PipelineEvent> _events = new();
    private readonly ConcurrentDictionary<string, int> _completed = new();
    private int _completedTotal;

    public IReadOnlyList<PipelineEvent> Events => [.. _events];

    /// <summary>Distinct command ids with a command.completed event.</summary>
    public int CompletedIds => _completed.Count;

    /// <summary>All command.completed events.</summary>
    public int CompletedTotal => Volatile.Read(ref _completedTotal);

    public IReadOnlyDictionary<string, int> CompletedById => _completed;

    public IEnumerable<PipelineEvent> OfType(string type) => _events.Where(e => e.EventType == type);

    public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var e in batch.Span)
        {
            _events.Enqueue(e);
            if (e.EventType == EventTypes.CommandCompleted)
            {
                _completed.AddOrUpdate(e.CommandId!, 1, static (_, n) => n + 1);
                Interlocked.Increment(ref _completedTotal);
            }
        }

        return ValueTask.CompletedTask;
    }
}

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

/// <summary>
/// Holds every run until <see cref="Open"/>, then takes <paramref name="duration"/>, or the
/// command's <c>input.ms</c> when it has one: work that cannot finish before the test says so.
/// </summary>
internal sealed class GatedTool(TimeSpan duration) : ITool
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Kind => "gated";

    public void Open() => _gate.TrySetResult();

    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        await _gate.Task.WaitAsync(cancellationToken);
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

/// <summary>
/// The seed of a randomized test: <c>PIPELINE_TEST_SEED</c> when set (to replay a failure), else a
/// fresh one; printed to the test's output either way, and named in its failure messages.
/// </summary>
internal static class Seeds
{
    public static int Next(Xunit.Abstractions.ITestOutputHelper output)
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("PIPELINE_TEST_SEED"), System.Globalization.CultureInfo.InvariantCulture, out var given)
            ? given
            : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with PIPELINE_TEST_SEED={seed})");
        return seed;
    }
}
