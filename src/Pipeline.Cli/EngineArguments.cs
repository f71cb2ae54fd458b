using System.CommandLine;
using Pipeline.Dispatch;
using Pipeline.Engine;

namespace Pipeline.Cli;

/// <summary>
/// The engine's block knobs, shared by <c>pipeline run</c> and <c>pipeline worker</c>: the ack
/// mode, the parallelism of each block, the in-flight bound, the emit batch, attempts, the tool
/// timeout and retries, the shutdown timeout, the output cap, the shell tool and the worker id.
/// <see cref="AddTo"/> puts them on a command (each range-checked by <see cref="PipelineCli.Int"/>,
/// so a bad value is a usage error naming its option); <see cref="Read"/> builds the
/// <see cref="PipelineOptions"/>. A command adds its own extras (the worker's <c>--sink-failure</c>,
/// run's <c>--max-line-bytes</c>) around them.
/// </summary>
internal sealed class EngineArguments
{
    private static readonly PipelineOptions Defaults = new();

    /// <param name="worker">The worker's wording of the few descriptions that differ from run's (help text is kept as each command had it).</param>
    public EngineArguments(bool worker)
    {
        AckMode = new Option<string>("--ack-mode")
        {
            Description = worker
                ? "before-dispatch (ack when claimed) or after-dispatch (ack on success, redeliver on failure)."
                : "When a claimed command is acked: before-dispatch (the claim is ownership) or after-dispatch (ack on success, redeliver on failure).",
            DefaultValueFactory = _ => "before-dispatch",
        };
        AckMode.AcceptOnlyFromAmong("before-dispatch", "after-dispatch");
        Pull = PipelineCli.Int("--pull-parallelism", "Concurrent pulls from the source.", Defaults.PullParallelism, 1, BlockOptions.MaxParallelism);
        ClaimParallelism = PipelineCli.Int("--claim-parallelism", "Claim block workers.", Defaults.Claim.Parallelism, 1, BlockOptions.MaxParallelism);
        AckParallelism = PipelineCli.Int("--ack-parallelism", "Ack-decision block workers.", Defaults.AckDecision.Parallelism, 1, BlockOptions.MaxParallelism);
        DispatchParallelism = PipelineCli.Int("--dispatch-parallelism", "Tools running at once.", Defaults.Dispatch.Parallelism, 1, BlockOptions.MaxParallelism);
        EmitParallelism = PipelineCli.Int("--emit-parallelism", "Emit block workers.", Defaults.Emit.Parallelism, 1, BlockOptions.MaxParallelism);
        MaxInFlight = PipelineCli.Int(
            "--max-in-flight",
            worker ? "Most items the pipeline holds at once; at least --pull-parallelism." : "Most items the pipeline holds at once (pulls wait for a free slot); at least --pull-parallelism.",
            Defaults.MaxInFlight,
            1,
            PipelineOptions.MaxInFlightLimit);
        EmitBatch = PipelineCli.Int("--emit-batch", "Most events per sink write.", Defaults.EmitBatchSize, 1, 65_536);
        MaxAttempts = PipelineCli.Int("--max-attempts", "With after-dispatch: attempts before a failing command is given up on.", Defaults.MaxAttempts, 1, PipelineCli.MaxAttempts);
        ToolTimeout = PipelineCli.Int(
            "--tool-timeout-ms",
            worker ? "Longest one tool attempt may take, in milliseconds." : "Longest one tool attempt may take, in milliseconds (each retry gets its own).",
            (int)Defaults.ToolTimeout.TotalMilliseconds,
            1,
            PipelineCli.MaxTimeoutMs);
        ToolRetries = PipelineCli.Int(
            "--tool-retries",
            worker
                ? "In-process retries of a transient tool failure."
                : "In-process retries of a transient tool failure (a timeout, a 5xx, a dropped connection) before the attempt counts as failed; each runs the tool again.",
            Defaults.ToolRetries,
            0,
            SettingLimits.MaxRetries);
        ShutdownTimeout = PipelineCli.Int(
            "--shutdown-timeout-ms",
            worker
                ? "After Ctrl+C or SIGTERM, how long in-flight work may finish, in milliseconds; what cannot is nacked."
                : "After Ctrl+C or SIGTERM, how long in-flight work may finish, in milliseconds.",
            (int)Defaults.ShutdownTimeout.TotalMilliseconds,
            0,
            PipelineCli.MaxTimeoutMs);
        MaxOutput = PipelineCli.Int(
            "--max-output-bytes",
            worker
                ? "Most bytes of output a tool keeps."
                : "Most bytes of output a tool keeps (shell stdout and stderr each, an http body, echo's result); more is read and dropped, and the result says truncated.",
            BuiltInToolOptions.DefaultMaxOutputBytes,
            1,
            BuiltInToolOptions.HardMaxOutputBytes);
        EnableShell = new Option<bool>("--enable-shell") { Description = "Register the shell tool (runs programs on this machine). Default: off." };
        WorkerId = new Option<string?>("--worker-id")
        {
            Description = worker ? "The worker id on events and claims. Default: host name and process id." : "The worker id on events. Default: host name and process id.",
        };
    }

    public Option<string> AckMode { get; }

    public Option<int> Pull { get; }

    public Option<int> ClaimParallelism { get; }

    public Option<int> AckParallelism { get; }

    public Option<int> DispatchParallelism { get; }

    public Option<int> EmitParallelism { get; }

    public Option<int> MaxInFlight { get; }

    public Option<int> EmitBatch { get; }

    public Option<int> MaxAttempts { get; }

    public Option<int> ToolTimeout { get; }

    public Option<int> ToolRetries { get; }

    public Option<int> ShutdownTimeout { get; }

    public Option<int> MaxOutput { get; }

    public Option<bool> EnableShell { get; }

    public Option<string?> WorkerId { get; }

    /// <summary>Adds the options to <paramref name="command"/>, in the order help lists them.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
        {
            AckMode, Pull, ClaimParallelism, AckParallelism, DispatchParallelism, EmitParallelism, MaxInFlight, EmitBatch,
            MaxAttempts, ToolTimeout, ToolRetries, ShutdownTimeout, MaxOutput, EnableShell, WorkerId,
        })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The engine options from a parse result (defaults for what was not given). Not validated: the caller checks cross-field rules.</summary>
    public PipelineOptions Read(ParseResult result) => Read(result, Defaults);

    /// <summary>The engine options: what the command line gave, <paramref name="basis"/> for the rest (e.g. a settings file's).</summary>
    public PipelineOptions Read(ParseResult result, PipelineOptions basis) => basis with
    {
        PullParallelism = Given(result, Pull, basis.PullParallelism),
        Claim = basis.Claim with { Parallelism = Given(result, ClaimParallelism, basis.Claim.Parallelism) },
        AckDecision = basis.AckDecision with { Parallelism = Given(result, AckParallelism, basis.AckDecision.Parallelism) },
        Dispatch = basis.Dispatch with { Parallelism = Given(result, DispatchParallelism, basis.Dispatch.Parallelism) },
        Emit = basis.Emit with { Parallelism = Given(result, EmitParallelism, basis.Emit.Parallelism) },
        MaxInFlight = Given(result, MaxInFlight, basis.MaxInFlight),
        EmitBatchSize = Given(result, EmitBatch, basis.EmitBatchSize),
        AckMode = IsGiven(result, AckMode)
            ? (result.GetValue(AckMode) == "after-dispatch" ? Engine.AckMode.AckAfterDispatch : Engine.AckMode.AckBeforeDispatch)
            : basis.AckMode,
        MaxAttempts = Given(result, MaxAttempts, basis.MaxAttempts),
        ToolTimeout = IsGiven(result, ToolTimeout) ? TimeSpan.FromMilliseconds(result.GetValue(ToolTimeout)) : basis.ToolTimeout,
        ToolRetries = Given(result, ToolRetries, basis.ToolRetries),
        ShutdownTimeout = IsGiven(result, ShutdownTimeout) ? TimeSpan.FromMilliseconds(result.GetValue(ShutdownTimeout)) : basis.ShutdownTimeout,
        WorkerId = result.GetValue(WorkerId) ?? basis.WorkerId,
    };

    /// <summary>Whether <paramref name="option"/> was on the command line (not just its default).</summary>
    public static bool IsGiven(ParseResult result, Option option) => result.GetResult(option) is { Implicit: false };

    /// <summary>The option's value when it was on the command line; <paramref name="otherwise"/> when not.</summary>
    public static T Given<T>(ParseResult result, Option<T> option, T otherwise) => IsGiven(result, option) ? result.GetValue(option)! : otherwise;

    /// <summary>An error message when <c>--worker-id</c> was given empty; null otherwise.</summary>
    public string? WorkerIdError(ParseResult result) =>
        result.GetValue(WorkerId) is { } id && string.IsNullOrWhiteSpace(id) ? "error: --worker-id must not be empty." : null;
}
