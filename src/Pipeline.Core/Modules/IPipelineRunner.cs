using Pipeline.Sources;

namespace Pipeline.Modules;

/// <summary>
/// The host's side of a run, handed to a source module: the module cannot name the host's
/// pipeline (its handle type is the source's own), so it passes its source here and the host
/// builds <see cref="Engine.CommandPipeline{THandle}"/> with its tools, sink, claimer, options
/// and logger, runs it until it ends or the host stops, and says how it ended.
/// </summary>
public interface IPipelineRunner
{
    /// <summary>Runs the pipeline over <paramref name="source"/>. Call once.</summary>
    /// <param name="source">The source, opened; the module disposes it after this returns.</param>
    /// <param name="exhausted">Whether the source has run out (a file read to its end), asked when a stop ended the run; null when it never runs out by itself.</param>
    Task<RunEnd> RunAsync<THandle>(ICommandSource<THandle> source, Func<bool>? exhausted = null);
}

/// <summary>How a pipeline run ended.</summary>
/// <param name="EndedBySource">It ended without a stop: the source ran out (a read file, an idle NATS source).</param>
/// <param name="DeadlineReached">The hard shutdown deadline cut work off.</param>
public readonly record struct RunEnd(bool EndedBySource, bool DeadlineReached);
