using Pipeline.Claiming;
using Pipeline.Events;
using Pipeline.Sources;

namespace Pipeline.Modules;

/// <summary>
/// The built-in module, registered by every host: the JSON Lines file source (<c>Pipeline:Source
/// file</c>, reading <c>Pipeline:CommandsFile</c>), and events to stdout (<c>Pipeline:Events -</c>)
/// or to a JSON Lines file (any other value of <c>Pipeline:Events</c>: its path).
/// </summary>
public sealed class CoreModule : IPipelineModule
{
    /// <summary>The JSON Lines file source kind, and the sink kind any <c>Pipeline:Events</c> value not naming a kind resolves to.</summary>
    public const string FileKind = "file";

    /// <summary>The stdout sink kind.</summary>
    public const string StandardOutputKind = "-";

    private CoreModule()
    {
    }

    /// <summary>The module.</summary>
    public static CoreModule Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => FileKind;

    /// <inheritdoc/>
    public IReadOnlyList<string> SourceKinds { get; } = [FileKind];

    /// <inheritdoc/>
    public IReadOnlyList<string> ClaimerKinds { get; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<string> SinkKinds { get; } = [StandardOutputKind, FileKind];

    /// <inheritdoc/>
    public ModuleCommandLine? WorkerCommandLine => null;

    /// <inheritdoc/>
    public ModuleEnqueue? Enqueue => null;

    /// <inheritdoc/>
    public string? ImpliedClaimer(ModuleContext context) => null;

    /// <inheritdoc/>
    public IModulePlan Plan(ModuleSelection selection, ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(context);
        var errors = new List<string>();
        string? commands = null;
        if (selection.Source is not null)
        {
            commands = context.Configuration["CommandsFile"];
            if (string.IsNullOrWhiteSpace(commands))
            {
                errors.Add($"{context.Key("CommandsFile")} is required with {context.Key("Source")} '{FileKind}' (a JSON Lines file of commands).");
            }
        }

        return new Planned(selection, commands, errors);
    }

    private sealed class Planned(ModuleSelection selection, string? commands, IReadOnlyList<string> errors) : IModulePlan
    {
        public IReadOnlyList<string> Errors => errors;

        public SourceDescription? Source => commands is null ? null : new SourceDescription(commands);

        public string? SinkName => selection.Sink switch
        {
            null => null,
            StandardOutputKind => "stdout",
            _ => selection.SinkTarget,
        };

        public IModuleRun Open(ModuleRunContext context) => new Run(selection, commands);
    }

    private sealed class Run(ModuleSelection selection, string? commands) : IModuleRun
    {
        private readonly RunResources _resources = new();

        public IEventSink CreateSink() => selection.Sink switch
        {
            StandardOutputKind => _resources.Add(JsonLinesEventSink.StandardOutput()),
            FileKind => _resources.Add(JsonLinesEventSink.CreateFile(selection.SinkTarget!)),
            _ => throw new InvalidOperationException($"The {FileKind} module provides no event sink to this run."),
        };

        public IClaimer CreateClaimer() => throw new InvalidOperationException($"The {FileKind} module offers no claimer.");

        public async Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken)
        {
            ArgumentNullException.ThrowIfNull(runner);
            var source = _resources.Add(JsonLinesFileSource.Open(commands ?? throw new InvalidOperationException($"The {FileKind} module provides no source to this run.")));
            await runner.RunAsync(source, () => source.Exhausted).ConfigureAwait(false);
            return null; // a file holds nothing back
        }

        public ValueTask DisposeAsync() => _resources.DisposeAsync();
    }
}
