using Microsoft.Extensions.Logging;
using Pipeline.Claiming;
using Pipeline.Events;

namespace Pipeline.Modules;

/// <summary>A module's settings for one run, bound and checked: what is wrong with them, how the run is described, and how it is opened.</summary>
public interface IModulePlan
{
    /// <summary>Every setting that cannot work, each naming its configuration key as typed (<c>Pipeline:Nats:Source:AckWait ...</c>); empty when the plan can run.</summary>
    IReadOnlyList<string> Errors { get; }

    /// <summary>How the selected source is described in start lines and summaries; null when the module provides no source.</summary>
    SourceDescription? Source { get; }

    /// <summary>Where the selected sink writes, as a summary names it (<c>stdout</c>, a path, <c>NATS subjects ...</c>); null when the module provides no sink.</summary>
    string? SinkName { get; }

    /// <summary>Opens the run: what the module creates here (its connections) it closes when the run is disposed. Call only when <see cref="Errors"/> is empty.</summary>
    IModuleRun Open(ModuleRunContext context);
}

/// <summary>What a run is opened with.</summary>
/// <param name="Loggers">Loggers for what the module builds (the engine's category is <c>pipeline</c>).</param>
/// <param name="Lifecycle">The host's logger, for start-up and shut-down messages (a connection that is down, an idle end).</param>
public sealed record ModuleRunContext(ILoggerFactory Loggers, ILogger Lifecycle);

/// <summary>
/// One run of a module: it owns what it opened (connections, the source, the claimer) and closes
/// it, newest first, when disposed after the pipeline has ended.
/// </summary>
public interface IModuleRun : IAsyncDisposable
{
    /// <summary>The selected event sink.</summary>
    IEventSink CreateSink();

    /// <summary>The selected claimer, asked for once, while the source runs (so a claimer may share what the source opened).</summary>
    IClaimer CreateClaimer();

    /// <summary>
    /// Starts the selected source (connect, bind), has <paramref name="runner"/> run the pipeline
    /// over it, and says what the backend still holds when the run ended by itself; null when it
    /// holds nothing worth saying, or was stopped.
    /// </summary>
    Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken);
}

/// <summary>How a source is named in the start line and the summary.</summary>
/// <param name="Where">The backend's address or path, safe to print (<c>nats://***@host:4222</c>, <c>commands.jsonl</c>).</param>
/// <param name="Detail">What is consumed there (<c>stream pipeline_commands consumer pipeline-workers</c>); empty when the address says it all.</param>
/// <param name="Ending">When the source ends by itself, as a clause (<c>, ending after 2 s idle</c>); empty when it runs until stopped or ends with its input.</param>
public sealed record SourceDescription(string Where, string Detail = "", string Ending = "")
{
    /// <summary>The address and what is consumed there.</summary>
    public override string ToString() => Detail.Length == 0 ? Where : $"{Where} {Detail}";
}
