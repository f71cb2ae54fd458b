using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Modules;
using Pipeline.Storage;

namespace Pipeline.Tests.Storage;

/// <summary>
/// The store module's generic part (<see cref="StoreModule{TOptions}"/>) over the in-memory store:
/// settings checked all at once, the owner, a run that drains the store in each execution's order,
/// a store failing for good or at open, the enqueuer's sessions, keys and transactions, and status.
/// </summary>
public sealed class StoreModuleTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private static ModuleContext Context(PipelineOptions? engine = null, params (string Key, string? Value)[] settings) =>
        new(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build(), engine ?? new PipelineOptions());

    private static IConfiguration Section(params (string Key, string? Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build().GetSection("Pipeline");

    private static readonly ModuleSelection SourceOnly = new("memory-store", null, null);

    // Enqueues the commands as 'pipeline enqueue' does, through the module's enqueuer.
    private static async Task<ICommandEnqueuer> EnqueueAsync(MemoryStoreModule module, IEnumerable<Command> commands, List<EnqueueFailure>? failures = null)
    {
        var enqueuer = module.Enqueue!.Open(Section(), f => failures?.Add(f));
        await enqueuer.StartAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        long tag = 0;
        foreach (var command in commands)
        {
            await enqueuer.EnqueueAsync(command, ++tag, CancellationToken.None);
        }

        await enqueuer.FlushAsync();
        return enqueuer;
    }

    private static async Task<(WorkLeft? Left, CollectingSink Sink)> RunAsync(MemoryStoreModule module, PipelineOptions? engine = null, params (string Key, string? Value)[] settings)
    {
        var plan = module.Plan(SourceOnly, Context(engine, [("MemoryStore:Source:IdleTimeout", "00:00:01"), ("MemoryStore:Source:PollInterval", "00:00:00.020"), .. settings]));
        Assert.Empty(plan.Errors);
        var sink = new CollectingSink();
        await using var run = plan.Open(new ModuleRunContext(NullLoggerFactory.Instance, NullLogger.Instance));
        var left = await run.RunSourceAsync(new DirectRunner(sink, engine), CancellationToken.None).WaitAsync(Bound);
        return (left, sink);
    }

    [Fact]
    public void Every_setting_that_cannot_work_is_named_by_its_key_at_once()
    {
        var module = new MemoryStoreModule(new InMemoryQueuedWorkStore());

        var plan = module.Plan(SourceOnly, Context(null, ("MemoryStore:Name", " "), ("MemoryStore:Source:LeaseTimeToLive", "00:00:00.500"), ("MemoryStore:Source:ClaimSessions", "0"), ("MemoryStore:Source:IdleTimeout", "soon")));

        Assert.Equal(
            [
                "Pipeline:MemoryStore:Source:IdleTimeout 'soon' is not a duration ([d.]hh:mm:ss[.fff], e.g. 00:00:30).",
                "Pipeline:MemoryStore:Name must name the store.",
                "Pipeline:MemoryStore:Source:LeaseTimeToLive must be from 1 s to 1 day.",
                "Pipeline:MemoryStore:Source:ClaimSessions must be between 1 and 10000.",
            ],
            plan.Errors);
    }

    [Fact]
    public void Every_duration_past_a_day_is_named_by_its_key_with_the_range()
    {
        // 50 days: more than a timer takes (about 49.7), which would throw once the source armed it.
        var module = new MemoryStoreModule(new InMemoryQueuedWorkStore());
        var keys = new[] { "LeaseTimeToLive", "PollInterval", "NackBackoffMax", "SettleTimeout", "IdleTimeout" };

        var plan = module.Plan(SourceOnly, Context(null, [.. keys.Select(k => ($"MemoryStore:Source:{k}", (string?)"50.00:00:00"))]));

        Assert.Equal(
            [
                "Pipeline:MemoryStore:Source:LeaseTimeToLive must be from 1 s to 1 day.",
                "Pipeline:MemoryStore:Source:PollInterval must be more than 0 and at most 1 day.",
                "Pipeline:MemoryStore:Source:NackBackoff must not be negative, and NackBackoffMax at least NackBackoff and at most 1 day.",
                "Pipeline:MemoryStore:Source:SettleTimeout must be more than 0 and at most 1 day.",
                "Pipeline:MemoryStore:Source:IdleTimeout must be more than 0 and at most 1 day (or null: never).",
            ],
            plan.Errors);
    }

    [Fact]
    public void An_owner_left_at_its_default_is_the_engines_worker_id_and_one_configured_is_kept()
    {
        var module = new MemoryStoreModule(new InMemoryQueuedWorkStore());
        var engine = new PipelineOptions { WorkerId = "worker-7" };

        var byDefault = module.Plan(SourceOnly, Context(engine, ("MemoryStore:Source:LeaseTimeToLive", "00:00:03")));
        var configured = module.Plan(SourceOnly, Context(engine, ("MemoryStore:Source:Owner", "night-shift")));

        Assert.Equal(new SourceDescription("memory:memory", "(Memory store, owner worker-7, lease 3 s)"), byDefault.Source);
        Assert.Equal("(Memory store, owner night-shift, lease 30 s)", configured.Source!.Detail);
    }

    [Fact]
    public async Task A_run_completes_every_command_each_execution_in_its_input_order_and_leaves_nothing()
    {
        var store = new InMemoryQueuedWorkStore();
        var module = new MemoryStoreModule(store);
        // Three executions interleaved in the input: each one's commands must start in input order.
        var commands = Enumerable.Range(0, 30).Select(i => TestCommands.Make($"c{i:00}", executionId: 100 + (i % 3))).ToList();
        await EnqueueAsync(module, commands);

        // After dispatch: a command is completed in the store only once its tool finished, so the
        // session's next one is claimed (and starts) after it. Before dispatch only the claims are in
        // order: the next is claimed as the previous starts, and two may start side by side.
        var (left, sink) = await RunAsync(module, new PipelineOptions { WorkerId = "w1", AckMode = AckMode.AckAfterDispatch });

        Assert.Equal(commands.Select(c => c.CommandId).Order(), sink.CompletedById.Keys.Order());
        Assert.All(sink.CompletedById.Values, n => Assert.Equal(1, n));
        foreach (var execution in commands.GroupBy(c => c.ExecutionId))
        {
            // By when each start was recorded: the sink receives events of different commands in the order the Emit block writes them, not the order they happened.
            var started = sink.Events.Where(e => e.EventType == EventTypes.CommandStarted && e.ExecutionId == execution.Key).OrderBy(e => e.CreatedAt).Select(e => e.CommandId);
            Assert.Equal(execution.Select(c => c.CommandId), started);
        }

        Assert.Equal(
            new WorkLeft("store", "memory:memory", 0, 0, 0)
            {
                InProgressAs = "claimed by other workers",
                WaitingAs = "pending",
                Hint = "run a worker again (it finishes what is pending, and takes over a stopped worker's claims once their leases lapse, 30 s)",
            },
            left);
        var summary = await store.SummarizeAsync(10, CancellationToken.None);
        Assert.Equal((0L, 0L, 30L, 0L), (summary.Pending, summary.Claimed, summary.Completed, summary.DeadLettered));
    }

    [Fact]
    public async Task A_store_that_fails_for_good_fails_the_run_with_one_error_naming_it_and_loses_nothing()
    {
        var store = new InMemoryQueuedWorkStore();
        var breakable = new BreakableStore(store);
        var module = new MemoryStoreModule(breakable);
        await EnqueueAsync(module, Enumerable.Range(0, 5).Select(i => TestCommands.Make($"c{i}", executionId: i)));
        breakable.Broken = new UnauthorizedAccessException("attempt to write a readonly database");

        var error = await Assert.ThrowsAsync<ModuleRunException>(() => RunAsync(module));

        Assert.StartsWith("The Memory store memory:memory cannot be used: attempt to write a readonly database", error.Message, StringComparison.Ordinal);
        Assert.Contains("stays in the store", error.Message, StringComparison.Ordinal);
        Assert.Equal(5, (await store.SummarizeAsync(0, CancellationToken.None)).Pending);
    }

    [Fact]
    public async Task An_open_that_may_pass_is_retried_and_one_that_cannot_fails_the_run_having_claimed_nothing()
    {
        var store = new InMemoryQueuedWorkStore();
        var module = new MemoryStoreModule(store);
        await EnqueueAsync(module, [TestCommands.Make("only")]);
        var failures = 2;
        module.OpenError = () => failures-- > 0 ? new TimeoutException("server starting") : null;
        var opensBefore = module.Opens;

        var (_, sink) = await RunAsync(module);

        Assert.Equal(3, module.Opens - opensBefore);
        Assert.Equal(1, sink.CompletedIds);

        module.OpenError = () => new IOException("no such device");
        var error = await Assert.ThrowsAsync<ModuleRunException>(() => RunAsync(module));
        Assert.Equal("The Memory store memory:memory cannot be used: no such device. Nothing was claimed.", error.Message);
    }

    [Fact]
    public async Task The_enqueuer_writes_each_execution_as_a_session_in_order_500_to_a_transaction_and_a_second_time_only_duplicates()
    {
        var store = new InMemoryQueuedWorkStore();
        var breakable = new BreakableStore(store);
        var module = new MemoryStoreModule(breakable);
        var commands = Enumerable.Range(0, 1_200).Select(i => TestCommands.Make($"c{i:0000}", executionId: i % 4)).ToList();

        var first = await EnqueueAsync(module, commands);
        await using (first)
        {
            Assert.Equal((1_200L, 0L, 0L, 3), (first.Enqueued, first.Duplicates, first.Failed, breakable.EnqueueCalls));
            Assert.Null(first.FatalError);
        }

        var second = await EnqueueAsync(module, commands);
        await using (second)
        {
            Assert.Equal((0L, 1_200L, 0L), (second.Enqueued, second.Duplicates, second.Failed));
        }

        var session = await store.ListAsync("3", CancellationToken.None);
        Assert.Equal(commands.Where(c => c.ExecutionId == 3).Select(c => c.CommandId), session.Select(b => b.IdempotencyKey));
        Assert.Equal("c0003", Command.Parse(session[0].Payload.Span).CommandId);
    }

    [Fact]
    public async Task An_enqueue_the_store_refuses_for_good_stops_with_one_error_and_counts_the_rest_failed()
    {
        var breakable = new BreakableStore(new InMemoryQueuedWorkStore());
        var module = new MemoryStoreModule(breakable);
        var failures = new List<EnqueueFailure>();
        var enqueuer = module.Enqueue!.Open(Section(), failures.Add);
        await using var _ = enqueuer;
        await enqueuer.StartAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        for (var i = 0; i < 500; i++)
        {
            await enqueuer.EnqueueAsync(TestCommands.Make($"a{i}"), i + 1, CancellationToken.None);
        }

        await Eventually.WaitFor(() => enqueuer.Enqueued == 500, Bound, "the first transaction");
        breakable.Broken = new UnauthorizedAccessException("disk is read-only");
        for (var i = 0; i < 100; i++)
        {
            await enqueuer.EnqueueAsync(TestCommands.Make($"b{i}"), 501 + i, CancellationToken.None);
        }

        await enqueuer.FlushAsync();

        Assert.Equal((500L, 100L), (enqueuer.Enqueued, enqueuer.Failed));
        Assert.Equal("The Memory store memory:memory cannot be used: disk is read-only. The rest of the input was not stored (run the same input again: what was stored is a duplicate by command_id and not stored twice).", enqueuer.FatalError);
        var failure = Assert.Single(failures);
        Assert.Equal((501L, "b0"), (failure.Tag, failure.CommandId));
    }

    [Fact]
    public async Task Status_reads_the_stores_counts_and_a_store_that_cannot_be_opened_is_one_error()
    {
        var store = new InMemoryQueuedWorkStore();
        var module = new MemoryStoreModule(store);
        await EnqueueAsync(module, [TestCommands.Make("a"), TestCommands.Make("b")]);

        var status = await module.Status!.ReadAsync(Section(("Pipeline:MemoryStore:Name", "q")), 10, CancellationToken.None);

        Assert.Equal(("memory-store", "memory:q", 2L), (status.Kind, status.Where, status.Summary.Pending));

        module.OpenError = () => new IOException("gone");
        var error = await Assert.ThrowsAsync<ModuleRunException>(() => module.Status.ReadAsync(Section(), 10, CancellationToken.None));
        Assert.Equal("The Memory store memory:memory cannot be used: gone.", error.Message);
    }

    /// <summary>The host's side as the hosted worker has it: the pipeline over the module's source with the built-in tools, until the source ends.</summary>
    private sealed class DirectRunner(IEventSink sink, PipelineOptions? options) : IPipelineRunner
    {
        public async Task<RunEnd> RunAsync<THandle>(ICommandSource<THandle> source, Func<bool>? exhausted = null)
        {
            var pipeline = new CommandPipeline<THandle>(source, ToolRegistry.CreateBuiltIn(), sink, options);
            await pipeline.RunAsync(CancellationToken.None);
            return new RunEnd(EndedBySource: true, pipeline.DeadlineReached);
        }
    }
}
