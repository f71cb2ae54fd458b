using Microsoft.Extensions.Configuration;
using Pipeline.Engine;

namespace Pipeline.Modules;

/// <summary>
/// A backend plugged into a host with one registration line (<c>services.AddPipelineNats()</c>,
/// which calls <see cref="PipelineModuleServiceCollectionExtensions.AddPipelineModule"/>): what
/// it offers by kind name (sources, claimers, event sinks), how it binds and checks its settings
/// from its own configuration section, and how it opens and closes what a run needs. The host and
/// the CLI call this interface only, so a backend's types never reach them.
/// </summary>
public interface IPipelineModule
{
    /// <summary>The module's name, as messages show it (<c>nats</c>, <c>file</c>).</summary>
    string Name { get; }

    /// <summary>The source kinds it offers, as <c>Pipeline:Source</c> names them (<c>nats</c>).</summary>
    IReadOnlyList<string> SourceKinds { get; }

    /// <summary>The claimer kinds it offers, as <c>Pipeline:Claimer</c> names them (<c>nats-kv</c>).</summary>
    IReadOnlyList<string> ClaimerKinds { get; }

    /// <summary>The event sink kinds it offers, as <c>Pipeline:Events</c> names them (<c>nats</c>).</summary>
    IReadOnlyList<string> SinkKinds { get; }

    /// <summary>
    /// The module's own section under <c>Pipeline</c> and the options record bound there
    /// (<c>Nats</c>, <c>NatsWorkerOptions</c>), so a host knows its keys: a key under
    /// <c>Pipeline</c> that no record reads is warned about. Null when the module reads none.
    /// </summary>
    ModuleSection? Section => null;

    /// <summary>
    /// What <c>pipeline worker</c> takes to run this module's source: its selecting flag
    /// (<c>--nats URL</c>) and its own flags; null when the module's source does not run there.
    /// </summary>
    ModuleCommandLine? WorkerCommandLine { get; }

    /// <summary>What <c>pipeline enqueue</c> takes to put commands where this module's source takes them from; null when it cannot.</summary>
    ModuleEnqueue? Enqueue { get; }

    /// <summary>What <c>pipeline status</c> takes to show what this module's store holds; null (the default) when it has no store to show.</summary>
    ModuleStatus? Status => null;

    /// <summary>The claimer this module's source uses when <c>Pipeline:Claimer</c> is not set (an older key kept as an alias); null for none.</summary>
    string? ImpliedClaimer(ModuleContext context);

    /// <summary>
    /// Binds and checks what <paramref name="selection"/> uses from the module's configuration;
    /// never throws for a bad setting (<see cref="IModulePlan.Errors"/> says what is wrong).
    /// </summary>
    IModulePlan Plan(ModuleSelection selection, ModuleContext context);
}

/// <summary>The parts of a run one module provides: each kind is one of the module's, or null when another module (or nothing) provides it.</summary>
/// <param name="Source">The source kind.</param>
/// <param name="Claimer">The claimer kind.</param>
/// <param name="Sink">The event sink kind.</param>
/// <param name="SinkTarget">What <c>Pipeline:Events</c> said for the sink (a path for the file sink).</param>
public sealed record ModuleSelection(string? Source, string? Claimer, string? Sink, string? SinkTarget = null)
{
    /// <summary>Whether the module provides anything to the run.</summary>
    public bool Any => Source is not null || Claimer is not null || Sink is not null;
}

/// <summary>What a module reads its settings from.</summary>
/// <param name="Configuration">The <c>Pipeline</c> section; a module reads its own section under it (<c>Nats</c>).</param>
/// <param name="Engine">The engine's options (a source's settings may depend on them: NATS's MaxAckPending on MaxInFlight).</param>
public sealed record ModuleContext(IConfiguration Configuration, PipelineOptions Engine)
{
    /// <summary>The section's path, which messages put before a key (<c>Pipeline:Nats:Source:AckWait</c>).</summary>
    public string Root { get; init; } = "Pipeline";

    /// <summary>A key as the user types it: <see cref="Root"/>, then <paramref name="path"/> (<c>Nats:Source</c>).</summary>
    public string Key(string path) => $"{Root}:{path}";
}

/// <summary>A module's configuration section.</summary>
/// <param name="Name">The section's key under <c>Pipeline</c> (<c>Nats</c>).</param>
/// <param name="Options">The options record bound from it; its settable properties are the section's keys.</param>
public sealed record ModuleSection(string Name, Type Options);
