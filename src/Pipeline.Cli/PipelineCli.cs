using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Sources;

namespace Pipeline.Cli;

/// <summary>The command-line surface: <c>pipeline run &lt;commands.jsonl&gt;</c> and its knobs.</summary>
public static class PipelineCli
{
    /// <summary>The longest timeout an option takes: one day, in milliseconds.</summary>
    public const int MaxTimeoutMs = 86_400_000;

    /// <summary>The most attempts <c>--max-attempts</c> takes.</summary>
    public const int MaxAttempts = 1000;

    /// <summary>Parses <paramref name="args"/> and runs the command.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="stdout">Where the summary (and events, with <c>--events -</c>) go.</param>
    /// <param name="stderr">Where errors go.</param>
    /// <param name="interactive">Live progress when true, plain lines when false; null decides from the terminal.</param>
    /// <param name="stop">Stop requests (signals); none when null.</param>
    /// <param name="stdin">What <c>-</c> as the commands file reads; the process's standard input when null.</param>
    public static async Task<int> InvokeAsync(string[] args, TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals? stop = null, Func<Stream>? stdin = null)
    {
        using var owned = stop is null ? new StopSignals() : null;
        stop ??= owned!;
        var root = BuildRoot(stdout, stderr, interactive, stop, stdin ?? Console.OpenStandardInput);
        // No response files: '@x.jsonl' is a file name, not a list of options to read.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(error.Message)}");
            }

            // The help of the command the error is in ('pipeline worker --help'), or of 'run' at the root.
            var help = parsed.CommandResult.Command is RootCommand ? "run" : parsed.CommandResult.Command.Name;
            await stderr.WriteLineAsync($"Try 'pipeline {help} --help'.");
            return ExitCodes.UsageError;
        }

        // Signals are handled by StopSignals (a drain, then the summary). System.CommandLine's own
        // handler (ProcessTerminationTimeout, 2 s by default) would end the process mid-drain.
        var invocation = new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null };
        return await parsed.InvokeAsync(invocation, stop.Graceful);
    }

    private static RootCommand BuildRoot(TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals stop, Func<Stream> stdin)
    {
        var defaults = new PipelineOptions();
        var file = new Argument<string>("commands") { Description = "A JSON Lines file, one command per line ('-' reads standard input)." };
        var events = new Option<string?>("--events") { Description = "Write events as JSON Lines to this file ('-' for stdout). Default: no event file." };
        var ackMode = new Option<string>("--ack-mode")
        {
            Description = "When a claimed command is acked: before-dispatch (the claim is ownership) or after-dispatch (ack on success, redeliver on failure).",
            DefaultValueFactory = _ => "before-dispatch",
        };
        ackMode.AcceptOnlyFromAmong("before-dispatch", "after-dispatch");

        var pull = Int("--pull-parallelism", "Concurrent pulls from the source.", defaults.PullParallelism, 1, BlockOptions.MaxParallelism);
        var claimParallelism = Int("--claim-parallelism", "Claim block workers.", defaults.Claim.Parallelism, 1, BlockOptions.MaxParallelism);
        var ackParallelism = Int("--ack-parallelism", "Ack-decision block workers.", defaults.AckDecision.Parallelism, 1, BlockOptions.MaxParallelism);
        var dispatchParallelism = Int("--dispatch-parallelism", "Tools running at once.", defaults.Dispatch.Parallelism, 1, BlockOptions.MaxParallelism);
        var emitParallelism = Int("--emit-parallelism", "Emit block workers.", defaults.Emit.Parallelism, 1, BlockOptions.MaxParallelism);
        var maxInFlight = Int("--max-in-flight", "Most items the pipeline holds at once (pulls wait for a free slot); at least --pull-parallelism.", defaults.MaxInFlight, 1, PipelineOptions.MaxInFlightLimit);
        var emitBatch = Int("--emit-batch", "Most events per sink write.", defaults.EmitBatchSize, 1, 65_536);
        var maxAttempts = Int("--max-attempts", "With after-dispatch: attempts before a failing command is given up on.", defaults.MaxAttempts, 1, MaxAttempts);
        var toolTimeout = Int("--tool-timeout-ms", "Longest one tool attempt may take, in milliseconds (each retry gets its own).", (int)defaults.ToolTimeout.TotalMilliseconds, 1, MaxTimeoutMs);
        var toolRetries = Int("--tool-retries", "In-process retries of a transient tool failure (a timeout, a 5xx, a dropped connection) before the attempt counts as failed; each runs the tool again.", defaults.ToolRetries, 0, 10);
        var shutdownTimeout = Int("--shutdown-timeout-ms", "After Ctrl+C or SIGTERM, how long in-flight work may finish, in milliseconds.", (int)defaults.ShutdownTimeout.TotalMilliseconds, 0, MaxTimeoutMs);
        var maxOutput = Int("--max-output-bytes", "Most bytes of output a tool keeps (shell stdout and stderr each, an http body, echo's result); more is read and dropped, and the result says truncated.", BuiltInToolOptions.DefaultMaxOutputBytes, 1, BuiltInToolOptions.HardMaxOutputBytes);
        var maxLine = Int("--max-line-bytes", "Longest command line; a longer one is a claim.failed naming its line, skipped without being held in memory.", JsonLinesSourceOptions.DefaultMaxLineBytes, 1, JsonLinesSourceOptions.HardMaxLineBytes);
        var enableShell = new Option<bool>("--enable-shell") { Description = "Register the shell tool (runs programs on this machine). Default: off." };
        var workerId = new Option<string?>("--worker-id") { Description = "The worker id on events. Default: host name and process id." };
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines even on a terminal." };

        var run = new Command("run", "Run every command in a JSON Lines file through the pipeline, then print a summary.")
        {
            file, events, ackMode, pull, claimParallelism, ackParallelism,
            dispatchParallelism, emitParallelism, maxInFlight, emitBatch, maxAttempts,
            toolTimeout, toolRetries, shutdownTimeout, maxOutput, maxLine, enableShell, workerId, plain,
        };
        run.SetAction(async (result, token) =>
        {
            if (string.IsNullOrEmpty(result.GetValue(file)))
            {
                await stderr.WriteLineAsync("error: the commands file must be named ('-' reads standard input), not ''.");
                return ExitCodes.UsageError;
            }

            if (result.GetValue(events) is { Length: 0 })
            {
                await stderr.WriteLineAsync("error: --events must name a file ('-' for stdout), not ''.");
                return ExitCodes.UsageError;
            }

            var inFlight = result.GetValue(maxInFlight);
            var pulls = result.GetValue(pull);
            if (inFlight < pulls)
            {
                await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"error: --max-in-flight ({inFlight}) must be at least --pull-parallelism ({pulls})."));
                return ExitCodes.UsageError;
            }

            if (result.GetValue(workerId) is { } id && string.IsNullOrWhiteSpace(id))
            {
                await stderr.WriteLineAsync("error: --worker-id must not be empty.");
                return ExitCodes.UsageError;
            }

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
                    ToolRetries = result.GetValue(toolRetries),
                    ShutdownTimeout = TimeSpan.FromMilliseconds(result.GetValue(shutdownTimeout)),
                    WorkerId = result.GetValue(workerId) ?? defaults.WorkerId,
                };
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                // The options above are range-checked per option; this is a last line of defence.
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(ex.Message)}");
                return ExitCodes.UsageError;
            }

            var request = new RunRequest(
                result.GetValue(file)!,
                result.GetValue(events),
                options,
                new JsonLinesSourceOptions { MaxLineBytes = result.GetValue(maxLine) },
                new BuiltInToolOptions { EnableShell = result.GetValue(enableShell), MaxOutputBytes = result.GetValue(maxOutput) },
                result.GetValue(plain) ? false : interactive);
            return await RunCommand.ExecuteAsync(request, new RunConsole(stdout, stderr, stdin, stop), token);
        });

        return new RootCommand("Pipeline: a high-throughput command worker. Pull, Claim, Ack-decision, Dispatch, Emit.") { run, WorkerCommand.Build(stdout, stderr, interactive, stop), Nats.EnqueueCli.Build(stdout, stderr, interactive, stop, stdin) };
    }

    /// <summary>An integer option with a default and an inclusive range; a value outside it is a usage error naming the option.</summary>
    internal static Option<int> Int(string name, string description, int fallback, int min, int max)
    {
        var option = new Option<int>(name)
        {
            Description = string.Create(CultureInfo.InvariantCulture, $"{description} From {min} to {max}. Default: {fallback}."),
            DefaultValueFactory = _ => fallback,
        };
        option.CustomParser = result =>
        {
            // One message for a value that is not a number, too big for one, or out of range.
            var token = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
            if (!long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            {
                result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} must be a whole number from {min} to {max}, not '{TerminalText.Escape(token, 40)}'."));
                return fallback;
            }

            return (int)value;
        };
        return option;
    }
}
