using Pipeline.Claiming;
using Pipeline.Events;

namespace Pipeline.Modules;

/// <summary>What a run is configured to use, as the user spelled it.</summary>
/// <param name="Source">The source kind (<c>Pipeline:Source</c>: <c>file</c>, <c>nats</c>).</param>
/// <param name="Claimer">The claimer kind (<c>Pipeline:Claimer</c>: <c>nats-kv</c>, <c>none</c>); null for the source module's implied one (an older key's alias), if any.</param>
/// <param name="Events">Where events go (<c>Pipeline:Events</c>): a sink kind (<c>nats</c>, <c>-</c>), anything else a file path; null for nowhere.</param>
public sealed record PipelineChoice(string? Source, string? Claimer, string? Events);

/// <summary>
/// The registered modules: finds the one offering each kind a run is configured with, and has
/// each bind and check its part. The host and the CLI go through it and name no backend.
/// </summary>
public sealed class PipelineModules
{
    /// <summary>The <c>Pipeline:Claimer</c> value for no claimer.</summary>
    public const string NoClaimer = "none";

    private readonly IPipelineModule[] _modules;

    /// <summary>The registered modules, the built-in <see cref="CoreModule"/> among them.</summary>
    public PipelineModules(IEnumerable<IPipelineModule> modules)
    {
        ArgumentNullException.ThrowIfNull(modules);
        // Backends first, the embedded default last: lists of kinds read "nats, file".
        _modules = [.. modules.Distinct().OrderBy(m => m is CoreModule ? 1 : 0)];
    }

    /// <summary>The modules, backends first, the built-in file module last.</summary>
    public IReadOnlyList<IPipelineModule> All => _modules;

    /// <summary>Every source kind, as messages list them.</summary>
    public IReadOnlyList<string> SourceKinds => [.. _modules.SelectMany(m => m.SourceKinds)];

    /// <summary>Every claimer kind, as messages list them.</summary>
    public IReadOnlyList<string> ClaimerKinds => [.. _modules.SelectMany(m => m.ClaimerKinds)];

    /// <summary>Every event sink kind chosen by name (the file sink takes any other value, a path).</summary>
    public IReadOnlyList<string> SinkKinds => [.. _modules.SelectMany(m => m.SinkKinds).Where(k => k != CoreModule.FileKind)];

    /// <summary>Whether <c>Pipeline:Events</c> <paramref name="events"/> is a file path (it names no sink kind).</summary>
    public bool IsFilePath(string? events) => !string.IsNullOrWhiteSpace(events) && !SinkKinds.Contains(events);

    /// <summary>Whether <paramref name="events"/> goes to this machine (a file, or stdout): a write that fails there will not succeed by waiting, as a server's may.</summary>
    public bool IsLocal(string? events) => events == CoreModule.StandardOutputKind || IsFilePath(events);

    /// <summary>
    /// Resolves <paramref name="choice"/> to modules and has each plan its part. Every setting
    /// that cannot work is in <see cref="PipelineSetup.Errors"/>, each naming its key.
    /// </summary>
    public PipelineSetup Prepare(PipelineChoice choice, ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(choice);
        ArgumentNullException.ThrowIfNull(context);
        var errors = new List<string>();

        var sourceKind = choice.Source?.Trim().ToLowerInvariant();
        var sourceModule = sourceKind is null ? null : _modules.FirstOrDefault(m => m.SourceKinds.Contains(sourceKind));
        if (sourceModule is null)
        {
            errors.Add($"{context.Key("Source")} '{choice.Source}' is not a known source kind; known: {string.Join(", ", SourceKinds)}.");
        }

        var claimerKind = string.IsNullOrWhiteSpace(choice.Claimer) ? sourceModule?.ImpliedClaimer(context) : choice.Claimer.Trim().ToLowerInvariant();
        claimerKind = claimerKind == NoClaimer ? null : claimerKind;
        IPipelineModule? claimerModule = null;
        if (claimerKind is not null && (claimerModule = _modules.FirstOrDefault(m => m.ClaimerKinds.Contains(claimerKind))) is null)
        {
            errors.Add($"{context.Key("Claimer")} '{choice.Claimer}' is not a known claimer kind; known: {string.Join(", ", ClaimerKinds.Append(NoClaimer))}.");
            claimerKind = null;
        }

        string? sinkKind = null;
        IPipelineModule? sinkModule = null;
        if (choice.Events is { } events)
        {
            if (string.IsNullOrWhiteSpace(events))
            {
                errors.Add($"{context.Key("Events")} must be null (none), {string.Join(", ", SinkKinds.Select(k => $"'{k}'"))} or a file path, not '{events}'.");
            }
            else
            {
                // A kind by name; anything else is a path for the file sink.
                sinkKind = SinkKinds.Contains(events) ? events : CoreModule.FileKind;
                sinkModule = _modules.FirstOrDefault(m => m.SinkKinds.Contains(sinkKind));
                if (sinkModule is null)
                {
                    errors.Add($"{context.Key("Events")} '{events}': no module writes events to a file (the built-in file module is not registered).");
                    sinkKind = null;
                }
            }
        }

        // One plan per module, opened sink first and source last (closed in reverse: the source
        // and its connections before the sink's last flush), as the run needs them.
        var plans = new List<(IPipelineModule Module, IModulePlan Plan)>();
        foreach (var module in new[] { sinkModule, claimerModule, sourceModule }.OfType<IPipelineModule>().Distinct())
        {
            var selection = new ModuleSelection(
                module == sourceModule ? sourceKind : null,
                module == claimerModule ? claimerKind : null,
                module == sinkModule ? sinkKind : null,
                module == sinkModule ? choice.Events : null);
            var plan = module.Plan(selection, context);
            errors.AddRange(plan.Errors);
            plans.Add((module, plan));
        }

        return new PipelineSetup(
            errors,
            plans,
            sourceModule is null ? null : plans.First(p => p.Module == sourceModule).Plan,
            claimerModule is null ? null : plans.First(p => p.Module == claimerModule).Plan,
            sinkModule is null ? null : plans.First(p => p.Module == sinkModule).Plan);
    }
}

/// <summary>A run's modules, planned: what is wrong, how the run is described, and how it is opened.</summary>
public sealed class PipelineSetup
{
    private readonly List<(IPipelineModule Module, IModulePlan Plan)> _plans;
    private readonly IModulePlan? _source;
    private readonly IModulePlan? _claimer;
    private readonly IModulePlan? _sink;

    internal PipelineSetup(IReadOnlyList<string> errors, List<(IPipelineModule, IModulePlan)> plans, IModulePlan? source, IModulePlan? claimer, IModulePlan? sink)
    {
        Errors = errors;
        _plans = plans;
        _source = source;
        _claimer = claimer;
        _sink = sink;
    }

    /// <summary>Every setting that cannot work, each naming its key; empty when the run can start.</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>The source, as start lines and summaries name it.</summary>
    public SourceDescription? Source => _source?.Source;

    /// <summary>Where events go, as a summary names it; null for nowhere.</summary>
    public string? EventsName => _sink?.SinkName;

    /// <summary>Opens every module's part (sink first, source last). Dispose the result when the run has ended.</summary>
    /// <exception cref="InvalidOperationException">The setup has errors.</exception>
    public async ValueTask<PipelineModulesRun> OpenAsync(ModuleRunContext context)
    {
        if (Errors.Count > 0)
        {
            throw new InvalidOperationException($"The pipeline's settings cannot work: {string.Join(" ", Errors)}");
        }

        var resources = new RunResources();
        var runs = new Dictionary<IModulePlan, IModuleRun>();
        try
        {
            foreach (var (_, plan) in _plans)
            {
                runs[plan] = resources.Add(plan.Open(context));
            }
        }
        catch
        {
            // What opened before the failure is closed; the caller gets the first error.
            await resources.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new PipelineModulesRun(
            resources,
            _source is null ? null : runs[_source],
            _claimer is null ? null : runs[_claimer],
            _sink is null ? null : runs[_sink]);
    }
}

/// <summary>A run's opened modules: the sink, the claimer and the source, closed together (newest first) when disposed.</summary>
public sealed class PipelineModulesRun : IAsyncDisposable
{
    private readonly RunResources _resources;
    private readonly IModuleRun? _source;
    private readonly IModuleRun? _claimer;
    private readonly IModuleRun? _sink;

    internal PipelineModulesRun(RunResources resources, IModuleRun? source, IModuleRun? claimer, IModuleRun? sink)
    {
        _resources = resources;
        _source = source;
        _claimer = claimer;
        _sink = sink;
    }

    /// <summary>Whether a claimer was chosen.</summary>
    public bool HasClaimer => _claimer is not null;

    /// <summary>The chosen sink; <see cref="NullEventSink"/> when events go nowhere.</summary>
    public IEventSink CreateSink() => _sink?.CreateSink() ?? NullEventSink.Instance;

    /// <summary>The chosen claimer; null for none (the pipeline's pass-through).</summary>
    public IClaimer? CreateClaimer() => _claimer?.CreateClaimer();

    /// <summary>Runs the chosen source through <paramref name="runner"/>; see <see cref="IModuleRun.RunSourceAsync"/>.</summary>
    public Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken) =>
        (_source ?? throw new InvalidOperationException("No source was chosen.")).RunSourceAsync(runner, stoppingToken);

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _resources.DisposeAsync();
}
