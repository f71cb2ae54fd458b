using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Modules;
using Pipeline.Sources;

namespace Pipeline.Cli;

/// <summary>The command-line surface: <c>pipeline run &lt;commands.jsonl&gt;</c> and its knobs.</summary>
public static class PipelineCli
{
    /// <summary>The longest timeout an option takes: one day, in milliseconds (as configuration's, <see cref="SettingLimits"/>).</summary>
    public const int MaxTimeoutMs = SettingLimits.LongestMilliseconds;

    /// <summary>The most attempts <c>--max-attempts</c> takes (as configuration's).</summary>
    public const int MaxAttempts = SettingLimits.MaxAttempts;

    /// <summary>
    /// The backends <c>pipeline worker</c>, <c>pipeline enqueue</c> and <c>pipeline status</c> offer,
    /// each registered by this one line (the file source and the stdout and file sinks are built
    /// in). A new backend is its project and an entry here: its flags, checks and help come from
    /// its module. The first is what runs when no source flag is given: the SQLite file.
    /// </summary>
    internal static IReadOnlyList<IPipelineModule> Modules { get; } =
    [
        new Pipeline.Storage.Sqlite.Modules.SqliteModule(),
        new Pipeline.Storage.Postgres.Modules.PostgresModule(),
        new Pipeline.Nats.Modules.NatsModule(),
    ];

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
        var file = new Argument<string>("commands") { Description = "A JSON Lines file, one command per line ('-' reads standard input)." };
        var events = new Option<string?>("--events") { Description = "Write events as JSON Lines to this file ('-' for stdout). Default: no event file." };
        var engine = new EngineArguments(worker: false);
        var maxLine = Int("--max-line-bytes", "Longest command line; a longer one is a claim.failed naming its line, skipped without being held in memory.", JsonLinesSourceOptions.DefaultMaxLineBytes, 1, JsonLinesSourceOptions.HardMaxLineBytes);
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines even on a terminal." };

        var run = new Command("run", "Run every command in a JSON Lines file through the pipeline, then print a summary.") { file, events };
        engine.AddTo(run);
        // Run's own extra sits among the engine's knobs, where help has always listed it.
        run.Options.Insert(run.Options.IndexOf(engine.EnableShell), maxLine);
        run.Options.Add(plain);
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

            var inFlight = result.GetValue(engine.MaxInFlight);
            var pulls = result.GetValue(engine.Pull);
            if (inFlight < pulls)
            {
                await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"error: --max-in-flight ({inFlight}) must be at least --pull-parallelism ({pulls})."));
                return ExitCodes.UsageError;
            }

            if (engine.WorkerIdError(result) is { } workerIdError)
            {
                await stderr.WriteLineAsync(workerIdError);
                return ExitCodes.UsageError;
            }

            PipelineOptions options;
            try
            {
                options = engine.Read(result);
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
                new BuiltInToolOptions { EnableShell = result.GetValue(engine.EnableShell), MaxOutputBytes = result.GetValue(engine.MaxOutput) },
                result.GetValue(plain) ? false : interactive);
            return await RunCommand.ExecuteAsync(request, new RunConsole(stdout, stderr, stdin, stop), token);
        });

        return new RootCommand("Pipeline: a high-throughput command worker. Pull, Claim, Ack-decision, Dispatch, Emit.") { run, WorkerCommand.Build(stdout, stderr, interactive, stop, Modules), EnqueueCommand.Build(stdout, stderr, interactive, stop, stdin, Modules), StatusCommand.Build(stdout, stderr, Modules) };
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
