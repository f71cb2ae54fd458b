using BenchmarkDotNet.Attributes;
using Pipeline.Bench.Stores;
using Pipeline.Commands;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Storage;
using Pipeline.Tools;

namespace Pipeline.Bench;

/// <summary>
/// The durable stores (issue 16), SQLite on a temp file and PostgreSQL on a cluster started here,
/// each at its defaults (SQLite synchronous FULL, PostgreSQL fsync and synchronous_commit on):
/// enqueue in one call and in calls of 500; claim + complete with claims of 1, 16 and 128 sessions
/// (one batch each) and settles of the same size per call; the whole pipeline over
/// <see cref="StoreCommandSource"/> at its defaults; and, in the same run, the naive baseline: one
/// row per transaction over a plain table of the same shape. Each operation is one command; each
/// benchmark checks every command was completed once. The store is fresh (and filled, not
/// measured) for each iteration.
/// </summary>
/// <remarks>
/// The one-by-one rows (claims of 1, the naive loop) commit once or twice per command, so they run
/// <see cref="SmallCount"/> commands: at this machine's 3 ms per fsync, 20,000 would take minutes
/// per iteration. Their per-command figures compare as they are. For the same reason the job is
/// shorter than the others' (1 warmup, 4 iterations): a PostgreSQL iteration of claims of 16 takes
/// about 20 s under load.
/// </remarks>
[WarmupCount(1)]
[IterationCount(4)]
public class StoreBenchmarks
{
    /// <summary>Commands per operation.</summary>
    internal const int Count = 20_000;

    /// <summary>Commands per operation of the rows that commit per command.</summary>
    internal const int SmallCount = 1_000;

    private readonly ToolRegistry _tools = new([new NoopTool()]);
    private StoreBackend _backend = null!;
    private QueuedBatchDraft[] _drafts = [];
    private IQueuedWorkStore? _store;
    private Func<Task>? _finish;

    [Params("sqlite", "postgres")]
    public string Store { get; set; } = "sqlite";

    /// <summary>Commands the 20,000 rows run (the quick mode changes it; BenchmarkDotNet divides by <see cref="Count"/>).</summary>
    internal int Commands { get; set; } = Count;

    /// <summary>Commands the one-by-one rows run.</summary>
    internal int FewCommands { get; set; } = SmallCount;

    /// <summary>Whether stores are wrapped in a <see cref="CountingStore"/> (the quick mode's round-trip counts).</summary>
    internal bool CountCalls { get; set; }

    /// <summary>The counts of the last counted store, once its iteration ended.</summary>
    internal string? LastCounts { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        _backend = StoreBackend.StartAsync(Store).GetAwaiter().GetResult();
        _drafts = Drafts(Math.Max(Commands, FewCommands));
    }

    [GlobalCleanup]
    public void Cleanup() => _backend.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [IterationSetup(Targets = [nameof(EnqueueOneCall), nameof(EnqueueCallsOf500)])]
    public void OpenEmpty() => _store = Wrap(_backend.OpenEmptyAsync().GetAwaiter().GetResult());

    [IterationSetup(Targets = [nameof(ClaimComplete16), nameof(ClaimComplete128), nameof(Pipeline), nameof(PipelineDispatch256)])]
    public void OpenFilled() => Fill(Commands);

    [IterationSetup(Target = nameof(ClaimComplete1))]
    public void OpenFilledFew() => Fill(FewCommands);

    [IterationSetup(Target = nameof(Naive))]
    public void FillNaive() => _backend.FillNaiveAsync(_drafts[..FewCommands]).GetAwaiter().GetResult();

    [IterationCleanup]
    public void Drop()
    {
        if (_finish is { } finish)
        {
            _finish = null;
            finish().GetAwaiter().GetResult();
        }

        if (_store is { } store)
        {
            _store = null;
            LastCounts = store is CountingStore counting ? counting.ToString() : null;
            _backend.DropAsync(store is CountingStore counted ? counted.Inner : store).GetAwaiter().GetResult();
        }

        GC.Collect();
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "enqueue 20,000 in one call")]
    public async Task EnqueueOneCall()
    {
        var results = await _store!.EnqueueAsync(_drafts[..Commands], CancellationToken.None);
        Check(results.Count == Commands && results.All(r => r.Created), "enqueue in one call did not create every batch");
        await CheckSummaryAsync(pending: Commands, completed: 0);
    }

    [Benchmark(OperationsPerInvoke = Count, Description = "enqueue 20,000 in calls of 500")]
    public async Task EnqueueCallsOf500()
    {
        await EnqueueInCallsAsync(_store!, _drafts[..Commands]);
        await CheckSummaryAsync(pending: Commands, completed: 0);
    }

    [Benchmark(OperationsPerInvoke = SmallCount, Description = "claim 1 session + settle 1 per call")]
    public Task ClaimComplete1() => ClaimCompleteAsync(1, FewCommands);

    [Benchmark(OperationsPerInvoke = Count, Description = "claim 16 sessions + settle 16 per call")]
    public Task ClaimComplete16() => ClaimCompleteAsync(16, Commands);

    [Benchmark(OperationsPerInvoke = Count, Description = "claim 128 sessions + settle 128 per call")]
    public Task ClaimComplete128() => ClaimCompleteAsync(128, Commands);

    [Benchmark(OperationsPerInvoke = Count, Description = "pipeline over StoreCommandSource (noop, events counted)")]
    public Task Pipeline() => RunPipelineAsync(PipelineOptions());

    /// <summary>
    /// The same with Dispatch parallelism 256: ack before dispatch holds a dispatch slot until the
    /// completion is durable, so the engine's 16 slots cap a settle transaction at 16 commands.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Count, Description = "pipeline, Dispatch parallelism 256")]
    public Task PipelineDispatch256() => RunPipelineAsync(PipelineOptions() with { Dispatch = new BlockOptions { Parallelism = 256 } });

    private async Task RunPipelineAsync(PipelineOptions options)
    {
        var source = new StoreCommandSource(_store!, new StoreSourceOptions { Owner = StoreBackend.Owner }, Store);
        var sink = new StoppingSink(3L * Commands);
        var pipeline = new CommandPipeline<StoreHandle>(source, _tools, sink, options);
        sink.Stop = pipeline.RequestStop;
        var run = pipeline.RunAsync(CancellationToken.None);

        // Ack before dispatch (the default): a command.completed event follows its durable completion,
        // so the last event marks the last command done. The stop after it is awaited in the cleanup.
        await Task.WhenAny(sink.AllWritten, run);
        _finish = async () =>
        {
            await run;
            await source.DisposeAsync();
            var stats = pipeline.Stats;
            Check(
                stats.Completed == Commands && source.Claimed == Commands && source.Acked == Commands && source.FencedOut == 0,
                $"completed {stats.Completed}, claimed {source.Claimed}, acked {source.Acked}, fenced out {source.FencedOut}, skipped {stats.Skipped}, failed {stats.Failed}");
            await CheckSummaryAsync(pending: 0, completed: Commands);
        };
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = SmallCount, Description = "Baseline: naive, one row per transaction")]
    public async Task Naive()
    {
        // The same work per command as the pipeline's noop: decode the command.
        var done = await _backend.DrainNaiveAsync(static payload => _ = Command.Parse(payload.Span));
        Check(done.Count == FewCommands && done.Distinct().Count() == FewCommands, $"the naive loop completed {done.Count} rows, {done.Distinct().Count()} distinct");
        var (pending, completed) = await _backend.CountNaiveAsync();
        Check(pending == 0 && completed == FewCommands, $"naive table: {pending} pending, {completed} completed");
    }

    /// <summary>
    /// The engine at its defaults; <c>PIPELINE_BENCH_DISPATCH</c> and <c>PIPELINE_BENCH_INFLIGHT</c>
    /// override its dispatch parallelism and MaxInFlight for tuning (the recorded runs set neither).
    /// </summary>
    private static PipelineOptions PipelineOptions()
    {
        var defaults = new PipelineOptions { WorkerId = StoreBackend.Owner };
        return defaults with
        {
            Dispatch = new BlockOptions { Parallelism = Knob("DISPATCH", defaults.Dispatch.Parallelism) },
            MaxInFlight = Knob("INFLIGHT", defaults.MaxInFlight),
        };
    }

    private static int Knob(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable($"PIPELINE_BENCH_{name}"), out var value) && value > 0 ? value : fallback;

    /// <summary>The commands as <c>pipeline enqueue</c> stores them: session = execution id (16 commands each), key = command id.</summary>
    internal static QueuedBatchDraft[] Drafts(int count) =>
        [.. BenchCommands.Make(count, "noop", "{}").Select(c => new QueuedBatchDraft
        {
            SessionId = c.ExecutionId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            IdempotencyKey = c.CommandId,
            Payload = System.Text.Encoding.UTF8.GetBytes(c.ToJson()),
        })];

    private void Fill(int count)
    {
        _store = Wrap(_backend.OpenEmptyAsync().GetAwaiter().GetResult());
        EnqueueInCallsAsync(_store, _drafts[..count]).GetAwaiter().GetResult();
    }

    private IQueuedWorkStore Wrap(IQueuedWorkStore store) => CountCalls ? new CountingStore(store) : store;

    private static async Task EnqueueInCallsAsync(IQueuedWorkStore store, QueuedBatchDraft[] drafts)
    {
        var created = 0;
        foreach (var chunk in drafts.Chunk(500))
        {
            created += (await store.EnqueueAsync(chunk, CancellationToken.None)).Count(r => r.Created);
        }

        Check(created == drafts.Length, $"enqueue created {created} of {drafts.Length}");
    }

    private async Task ClaimCompleteAsync(int sessions, int commands)
    {
        var lease = new LeaseRequest { Owner = StoreBackend.Owner, TimeToLive = TimeSpan.FromMinutes(5) };
        var completed = new HashSet<string>(commands, StringComparer.Ordinal);
        var settlements = new List<BatchSettlement>(sessions);
        while (await _store!.ClaimReadyAsync(lease, sessions, 1, CancellationToken.None) is { Count: > 0 } claims)
        {
            settlements.Clear();
            foreach (var claim in claims)
            {
                foreach (var batch in claim.Batches)
                {
                    Check(completed.Add(batch.BatchId), $"batch {batch.BatchId} claimed twice");
                    settlements.Add(BatchSettlement.Complete(batch.BatchId, claim.Fence));
                }
            }

            var results = await _store.SettleAsync(settlements, CancellationToken.None);
            Check(results.All(r => r == SettleStatus.Settled), "a completion was fenced out");
        }

        Check(completed.Count == commands, $"{completed.Count} of {commands} claimed");
        await CheckSummaryAsync(pending: 0, completed: commands);
    }

    private async Task CheckSummaryAsync(long pending, long completed)
    {
        var summary = await _store!.SummarizeAsync(0, CancellationToken.None);
        Check(
            summary.Pending == pending && summary.Claimed == 0 && summary.Completed == completed && summary.DeadLettered == 0,
            $"the store holds {summary.Pending} pending, {summary.Claimed} claimed, {summary.Completed} completed, {summary.DeadLettered} dead letters; expected {pending} pending, {completed} completed");
    }

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            throw new InvalidOperationException($"The run did not do what it should: {what}.");
        }
    }
}
