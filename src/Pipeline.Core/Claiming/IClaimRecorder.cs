using Pipeline.Commands;

namespace Pipeline.Claiming;

/// <summary>
/// A capability of an <see cref="IClaimer"/> whose claim is ownership kept outside the source (a
/// KV record, a control plane's claim): the engine tells it what became of each claim it granted,
/// so a redelivery can tell "finished, ack lost" from "never ran", and a claim handed back at a
/// stop is free for another worker at once.
/// </summary>
/// <remarks>
/// A claimer without this capability (other than <see cref="PassThroughClaimer"/>) keeps its claims:
/// on a stop, a command it claimed is not handed back but runs within the shutdown timeout, since
/// a nack alone would leave the claim held and the command lost. Both calls are made at most once
/// per granted claim; a throw is logged and counted, and the settle goes ahead.
/// </remarks>
public interface IClaimRecorder
{
    /// <summary>
    /// The claimed command will not run here: a stop handed it back before its tool started, or
    /// (ack after dispatch) its failure is retried by redelivery. Called before the nack.
    /// </summary>
    ValueTask ReleaseAsync(ClaimOutcome claimed, CancellationToken cancellationToken);

    /// <summary>
    /// The command's tool ended for good: it succeeded, or it failed and is given up on. With ack
    /// after dispatch this is called before the handle is settled; with ack before dispatch the
    /// handle was acked as the tool started, and this follows the tool.
    /// </summary>
    ValueTask RecordOutcomeAsync(ClaimOutcome claimed, bool succeeded, CancellationToken cancellationToken);
}
