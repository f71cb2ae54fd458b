using System.Threading.Channels;
using System.Threading.Tasks.Dataflow;
using BenchmarkDotNet.Attributes;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Sources;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// End to end, in memory, with the <c>noop</c> tool and every event delivered to a counting sink,
/// against three baselines measured in the same run: a raw bounded channel handoff (the floor of
/// one hop), a naive loop (SemaphoreSlim + a task per command, ack after), and the same five
/// stages built from TPL Dataflow blocks.
/// </summary>
public class ThroughputBenchmarks() : InMemoryBenchmark(Count, "noop", "{}")
{
    private const int Count = 200_000;
    private readonly ToolRegistry _tools = new([new NoopTool()]);

    [Params(1, 4, 16, 64)]
    public int DispatchParallelism { get; set; }

    [Benchmark(OperationsPerInvoke = Count, Description = "Pipeline (5 blocks, noop, events counted)")]
    public async Task Pipeline()
    {
        var pipeline = new CommandPipeline<DeliveryHandle>(Source, _tools, Sink, BenchCommands.NoopOptions(DispatchParallelism));
        await pipeline.RunAsync(CancellationToken.None);
        Check(pipeline.Stats.Completed == Count && Sink.Count == 3L * Count && Source.Acked == Count);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Baseline: naive loop (SemaphoreSlim + task per command, ack after)")]
    public async Task NaiveLoop()
    {
        var tool = new NoopTool();
        using var slots = new SemaphoreSlim(DispatchParallelism);
        var running = new List<Task>();
        while (await Source.NextAsync(CancellationToken.None) is { } pulled)
        {
            await slots.WaitAsync();
            running.Add(Task.Run(async () =>
            {
                try
                {
                    var command = pulled.Outcome.Command!;
                    var claimed = BenchCommands.Event(command, EventTypes.CommandClaimed, EventStatus.Claimed);
                    var started = BenchCommands.Event(command, EventTypes.CommandStarted, EventStatus.Started);
                    await tool.InvokeAsync(command, CancellationToken.None);
                    await Source.AckAsync(pulled.Handle, CancellationToken.None);
                    await Sink.WriteAsync(new[] { claimed, started, BenchCommands.Event(command, EventTypes.CommandCompleted, EventStatus.Completed) }, CancellationToken.None);
                }
                finally
                {
                    slots.Release();
                }
            }));
        }

        await Task.WhenAll(running);
        Check(Source.Acked == Count && Sink.Count == 3L * Count);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Baseline: raw bounded Channel<T> handoff (one hop, no work)")]
    public async Task RawChannel()
    {
        var channel = Channel.CreateBounded<Command>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true });
        var consumer = Task.Run(async () =>
        {
            long seen = 0;
            while (await channel.Reader.WaitToReadAsync())
            {
                while (channel.Reader.TryRead(out _))
                {
                    seen++;
                }
            }

            return seen;
        });
        foreach (var command in Commands)
        {
            if (!channel.Writer.TryWrite(command))
            {
                await channel.Writer.WriteAsync(command);
            }
        }

        channel.Writer.Complete();
        Check(await consumer == Count);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "Baseline: the five stages as idiomatic TPL Dataflow blocks")]
    public async Task Dataflow()
    {
        // The shape the Dataflow documentation suggests: async lambdas, LinkTo with completion,
        // BoundedCapacity on every block, Dispatch at P; the same work as the pipeline: claim
        // check, ack, the tool, three events per command to the sink.
        var tool = new NoopTool();
        var bounded = new ExecutionDataflowBlockOptions { BoundedCapacity = 1024 };
        var link = new DataflowLinkOptions { PropagateCompletion = true };
        var claim = new TransformBlock<Pulled<DeliveryHandle>, Pulled<DeliveryHandle>>(
            p => p.Outcome.Kind == ClaimOutcomeKind.Claimed ? p : throw new InvalidOperationException("not claimed"), bounded);
        var decide = new TransformBlock<Pulled<DeliveryHandle>, (Command Command, DateTimeOffset ClaimedAt)>(
            async p =>
            {
                await Source.AckAsync(p.Handle, CancellationToken.None);
                return (p.Outcome.Command!, DateTimeOffset.UtcNow);
            },
            bounded);
        var dispatch = new TransformBlock<(Command Command, DateTimeOffset ClaimedAt), PipelineEvent[]>(
            async c =>
            {
                var started = BenchCommands.Event(c.Command, EventTypes.CommandStarted, EventStatus.Started);
                await tool.InvokeAsync(c.Command, CancellationToken.None);
                return [BenchCommands.Event(c.Command, EventTypes.CommandClaimed, EventStatus.Claimed) with { CreatedAt = c.ClaimedAt }, started, BenchCommands.Event(c.Command, EventTypes.CommandCompleted, EventStatus.Completed)];
            },
            new ExecutionDataflowBlockOptions { BoundedCapacity = 1024, MaxDegreeOfParallelism = DispatchParallelism });
        var emit = new ActionBlock<PipelineEvent[]>(async events => await Sink.WriteAsync(events, CancellationToken.None), bounded);
        claim.LinkTo(decide, link);
        decide.LinkTo(dispatch, link);
        dispatch.LinkTo(emit, link);

        while (await Source.NextAsync(CancellationToken.None) is { } pulled)
        {
            await claim.SendAsync(pulled);
        }

        claim.Complete();
        await emit.Completion;
        Check(Source.Acked == Count && Sink.Count == 3L * Count);
    }
}
