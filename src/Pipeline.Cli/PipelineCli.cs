using System.CommandLine;
using Pipeline.Engine;

namespace Pipeline.Cli;

/// <summary>The command-line surface: <c>pipeline run &lt;commands.jsonl&gt;</c> and its knobs.</summary>
public static class PipelineCli
{
    /// <summary>Parses <paramref name="args"/> and runs the command.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="stdout">Where the summary (and events, with <c>--events -</c>) go.</param>
    /// <param name="stderr">Where errors go.</param>
    /// <param name="interactive">Live progress when true, plain lines when false; null decides from the terminal.</param>
    /// <param name="cancellationToken">Stops the run gracefully (Ctrl+C does the same).</param>
    public static async Task<int> InvokeAsync(string[] args, TextWriter stdout, TextWriter stderr, bool? interactive, CancellationToken cancellationToken = default)
    {
        var root = BuildRoot(stdout, stderr, interactive);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"error: {error.Message}");
            }

            await stderr.WriteLineAsync("Try 'pipeline run --help'.");
            return ExitCodes.UsageError;
        }

        // System.CommandLine 2.0.0 left ProcessTerminationTimeout null here (no Ctrl+C/SIGTERM handler of its own);
        // from 2.0.x/3.0 it defaults to 2 s, which would exit with 130 mid-shutdown. Keep the 2.0.0 behaviour.
        var invocation = new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null };
        return await parsed.InvokeAsync(invocation, cancellationToken);
    }

    private static RootCommand BuildRoot(TextWriter stdout, TextWriter stderr, bool? interactive)
    {
        var defaults = new PipelineOptions();
        var file = new Argument<FileInfo>("commands") { Description = "A JSON Lines file, one command per line." };
        var events = new Option<string?>("--events") { Description = "Write events as JSON Lines to this file ('-' for stdout). Default: no event file." };
        var ackMode = new Option<string>("--ack-mode")
        {
            Description = "When a claimed command is acked: before-dispatch (the claim is ownership) or after-dispatch (ack on success, redeliver on failure).",
            DefaultValueFactory = _ => "before-dispatch",
        };
        ackMode.AcceptOnlyFromAmong("before-dispatch", "after-dispatch");

        Option<int> Int(string name, string description, int fallback) =>
            new(name) { Description = $"{description} Default: {fallback}.", DefaultValueFactory = _ => fallback };

        var pull = Int("--pull-parallelism", "Concurrent pulls from the source.", defaults.PullParallelism);
        var claimParallelism = Int("--claim-parallelism", "Claim block workers.", defaults.Claim.Parallelism);
        var ackParallelism = Int("--ack-parallelism", "Ack-decision block workers.", defaults.AckDecision.Parallelism);
        var dispatchParallelism = Int("--dispatch-parallelism", "Tools running at once.", defaults.Dispatch.Parallelism);
        var emitParallelism = Int("--emit-parallelism", "Emit block workers.", defaults.Emit.Parallelism);
        var maxInFlight = Int("--max-in-flight", "Most items the pipeline holds at once (pulls wait for a free slot).", defaults.MaxInFlight);
        var emitBatch = Int("--emit-batch", "Most events per sink write.", defaults.EmitBatchSize);
        var maxAttempts = Int("--max-attempts", "With after-dispatch: attempts before a failing command is given up on.", defaults.MaxAttempts);
        var toolTimeout = Int("--tool-timeout-ms", "Longest one tool attempt may take, in milliseconds (each retry gets its own).", (int)defaults.ToolTimeout.TotalMilliseconds);
        var shutdownTimeout = Int("--shutdown-timeout-ms", "After Ctrl+C, how long in-flight work may finish, in milliseconds.", (int)defaults.ShutdownTimeout.TotalMilliseconds);
        var enableShell = new Option<bool>("--enable-shell") { Description = "Register the shell tool (runs programs on this machine). Default: off." };
        var workerId = new Option<string?>("--worker-id") { Description = "The worker id on events. Default: host name and process id." };
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines even on a terminal." };

        var run = new Command("run", "Run every command in a JSON Lines file through the pipeline, then print a summary.")
        {
            file, events, ackMode, pull, claimParallelism, ackParallelism,
            dispatchParallelism, emitParallelism, maxInFlight, emitBatch, maxAttempts,
            toolTimeout, shutdownTimeout, enableShell, workerId, plain,
        };

        run.SetAction(async (result, token) =>
        {
            PipelineOptions options;
            try
            {
                options = new PipelineOptions
                {
                    PullParallelism = result.GetValue(pull),
                    Claim = new BlockOptions { Parallelism = result.GetValue(claimParallelism) },
                    AckDecision = new BlockOptions { Parallelism = result.GetValue(ackParallelism) },
                    Dispatch = new BlockOptions { Parallelism = result.GetValue(dispatchParallelism) },
                    Emit = new BlockOptions { Parallelism = result.GetValue(emitParallelism) },
                    MaxInFlight = result.GetValue(maxInFlight),
                    EmitBatchSize = result.GetValue(emitBatch),
                    AckMode = result.GetValue(ackMode) == "after-dispatch" ? AckMode.AckAfterDispatch : AckMode.AckBeforeDispatch,
                    MaxAttempts = result.GetValue(maxAttempts),
                    ToolTimeout = TimeSpan.FromMilliseconds(result.GetValue(toolTimeout)),
                    ShutdownTimeout = TimeSpan.FromMilliseconds(result.GetValue(shutdownTimeout)),
                    WorkerId = result.GetValue(workerId) ?? defaults.WorkerId,
                };
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                var message = ex.Message;
                var parameter = message.IndexOf(" (Parameter", StringComparison.Ordinal);
                await stderr.WriteLineAsync($"error: {(parameter < 0 ? message : message[..parameter])}");
                return ExitCodes.UsageError;
            }

            var request = new RunRequest(
                result.GetValue(file)!.FullName,
                result.GetValue(events),
                options,
                result.GetValue(enableShell),
                result.GetValue(plain) ? false : interactive);
            return await RunCommand.ExecuteAsync(request, stdout, stderr, token);
        });

        return new RootCommand("Pipeline: a high-throughput command worker. Pull, Claim, Ack-decision, Dispatch, Emit.") { run };
    }
}
