using System.Collections.Concurrent;
using Pipeline.Claiming;
using Pipeline.Commands;
using Pipeline.Events;
using Pipeline.Modules;
using Pipeline.Sources;

namespace Pipeline.Testing.Modules;

/// <summary>
/// A backend that lives only in the tests, to prove a new one plugs in with its one registration
/// line and no change to the host: source <c>memory</c> (the commands given here), claimer
/// <c>memory-once</c> (each command id runs once) and events <c>memory</c> (kept in
/// <see cref="Events"/>), configured by <c>Pipeline:Memory</c>, where <c>Name</c> is required.
/// </summary>
public sealed class InMemoryModule(IEnumerable<Command> commands) : IPipelineModule
{
    private readonly ConcurrentQueue<PipelineEvent> _events = new();
    private readonly ConcurrentDictionary<string, byte> _claimed = new(StringComparer.Ordinal);
    private readonly Command[] _commands = [.. commands];

    /// <summary>Every event the <c>memory</c> sink was given.</summary>
    public IReadOnlyCollection<PipelineEvent> Events => _events;

    /// <summary>Whether a run opened by this module was disposed (its resources closed).</summary>
    public bool Closed { get; private set; }

    public string Name => "memory";

    public IReadOnlyList<string> SourceKinds { get; } = ["memory"];

    public IReadOnlyList<string> ClaimerKinds { get; } = ["memory-once"];

    public IReadOnlyList<string> SinkKinds { get; } = ["memory"];

    public ModuleCommandLine? WorkerCommandLine => null;

    public ModuleEnqueue? Enqueue => null;

    public string? ImpliedClaimer(ModuleContext context) => null;

    public IModulePlan Plan(ModuleSelection selection, ModuleContext context)
    {
        var name = context.Configuration["Memory:Name"];
        IReadOnlyList<string> errors = string.IsNullOrWhiteSpace(name) ? [$"{context.Key("Memory:Name")} is required with the memory module."] : [];
        return new MemoryPlan(this, selection, name ?? "", errors);
    }

    private sealed class MemoryPlan(InMemoryModule module, ModuleSelection selection, string name, IReadOnlyList<string> errors) : IModulePlan
    {
        public IReadOnlyList<string> Errors => errors;

        public SourceDescription? Source => selection.Source is null ? null : new SourceDescription($"memory:{name}");

        public string? SinkName => selection.Sink is null ? null : $"memory:{name}";

        public IModuleRun Open(ModuleRunContext context) => new MemoryRun(module);
    }

    private sealed class MemoryRun(InMemoryModule module) : IModuleRun, IEventSink, IClaimer
    {
        public IEventSink CreateSink() => this;

        public IClaimer CreateClaimer() => this;

        public async Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken)
        {
            var source = InMemoryCommandSource.From(module._commands);
            var end = await runner.RunAsync(source, () => source.Exhausted);
            return end.EndedBySource ? new WorkLeft("queue", "memory", InProgress: 0, Waiting: source.Ready, Redelivered: 0) : null;
        }

        public ValueTask WriteAsync(ReadOnlyMemory<PipelineEvent> batch, CancellationToken cancellationToken)
        {
            foreach (var e in batch.Span)
            {
                module._events.Enqueue(e);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken) =>
            new(module._claimed.TryAdd(context.Command!.CommandId, 0) ? context.Pulled : ClaimOutcome.AlreadyClaimed(context.Command));

        public ValueTask DisposeAsync()
        {
            module.Closed = true;
            return ValueTask.CompletedTask;
        }
    }
}
