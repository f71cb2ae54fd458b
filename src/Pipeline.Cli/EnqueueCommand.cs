using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Pipeline.Commands;
using Pipeline.Modules;
using Pipeline.Sources;
using Spectre.Console;

namespace Pipeline.Cli;

/// <summary>What <c>pipeline enqueue</c> was asked to do.</summary>
/// <param name="CommandsPath">The JSON Lines file, or '-' for standard input.</param>
/// <param name="Enqueue">The module's enqueueing.</param>
/// <param name="Section">The <c>Pipeline</c> section the module's flags were written to.</param>
/// <param name="Source">The commands reader's options (the line limit).</param>
/// <param name="Interactive">Live progress, plain lines, or null to decide from the terminal.</param>
internal sealed record EnqueueRequest(string CommandsPath, ModuleEnqueue Enqueue, IConfiguration Section, JsonLinesSourceOptions Source, bool? Interactive);

/// <summary>
/// <c>pipeline enqueue</c>: reads commands with the same byte-level JSON Lines reader as
/// <c>pipeline run</c> and hands each to the module its flag selects (<c>--nats</c>: published to
/// JetStream), which awaits their confirmations in a bounded window; then counts and a summary.
/// </summary>
internal static class EnqueueCommand
{
    /// <summary>How long connecting and finding the destination may take before the run gives up.</summary>
    internal static readonly TimeSpan StartBound = TimeSpan.FromSeconds(10);

    // After this many, malformed lines are counted, not printed one by one.
    private const int MaxListed = 100;

    public static System.CommandLine.Command Build(TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals stop, Func<Stream> stdin, IReadOnlyList<IPipelineModule> modules)
    {
        var offers = modules.Select(m => m.Enqueue).OfType<ModuleEnqueue>().ToList();
        var arguments = new ModuleArguments([.. offers.Select(o => o.CommandLine)]);
        var file = new Argument<string>("commands") { Description = "A JSON Lines file, one command per line ('-' reads standard input)." };
        var maxLine = new Option<int>("--max-line-bytes")
        {
            Description = $"Longest command line; a longer one is reported with its line number and not published. Default: {JsonLinesSourceOptions.DefaultMaxLineBytes}.",
            DefaultValueFactory = _ => JsonLinesSourceOptions.DefaultMaxLineBytes,
        };
        maxLine.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > JsonLinesSourceOptions.HardMaxLineBytes)
            {
                result.AddError($"--max-line-bytes must be a whole number from 1 to {JsonLinesSourceOptions.HardMaxLineBytes}.");
            }
        });
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines even on a terminal." };

        var destinations = string.Join("; ", offers.Select(o => $"{o.CommandLine.Selector.Name} {o.CommandLine.Selector.HelpName}: {o.Summary}"));
        var enqueue = new System.CommandLine.Command("enqueue", $"Publish every command of a JSON Lines file where 'pipeline worker' takes them from ({destinations}), for it to run.") { file };
        arguments.AddTo(enqueue);
        enqueue.Options.Add(maxLine);
        enqueue.Options.Add(plain);
        enqueue.SetAction(async (result, token) =>
        {
            if (arguments.Selected(result, out var selectError) is not { } line)
            {
                await stderr.WriteLineAsync($"error: {selectError ?? "no module takes enqueued commands."}");
                return ExitCodes.UsageError;
            }

            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            arguments.Apply(result, line, settings);
            if (line.Check?.Invoke(arguments.Values(result, line, settings, settingsFile: false)) is { Count: > 0 } errors)
            {
                foreach (var error in errors)
                {
                    await stderr.WriteLineAsync($"error: {TerminalText.Escape(error)}");
                }

                return ExitCodes.UsageError;
            }

            if (string.IsNullOrEmpty(result.GetValue(file)))
            {
                await stderr.WriteLineAsync("error: the commands file must be named ('-' reads standard input), not ''.");
                return ExitCodes.UsageError;
            }

            var request = new EnqueueRequest(
                result.GetValue(file)!,
                offers.First(o => o.CommandLine == line),
                new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("Pipeline"),
                new JsonLinesSourceOptions { MaxLineBytes = result.GetValue(maxLine) },
                result.GetValue(plain) ? false : interactive);
            return await ExecuteAsync(request, new RunConsole(stdout, stderr, stdin, stop), token);
        });
        return enqueue;
    }

    public static async Task<int> ExecuteAsync(EnqueueRequest request, RunConsole console, CancellationToken cancellationToken)
    {
        var (stdout, stderr) = (console.Out, console.Error);
        var inputName = request.CommandsPath == "-" ? "stdin" : request.CommandsPath;
        Stream input;
        try
        {
            input = request.CommandsPath == "-"
                ? console.OpenStandardInput()
                : new FileStream(request.CommandsPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: cannot read {TerminalText.Escape(inputName)}: {TerminalText.Escape(FileErrors.Reason(request.CommandsPath, ex))}");
            return ExitCodes.UsageError;
        }

        // The source owns (and disposes) the stream; its position drives the progress bar.
        await using var source = JsonLinesFileSource.Open(input, Path.GetFileName(inputName), request.Source);
        await using var enqueuer = request.Enqueue.Open(request.Section, failure => Report(stderr, failure));
        try
        {
            await enqueuer.StartAsync(StartBound, cancellationToken);
        }
        catch (EnqueueException ex)
        {
            // A setting that cannot work is a usage error; a backend that cannot be reached is a failure.
            await stderr.WriteLineAsync($"error: {TerminalText.Escape(ex.Message, 2000)}");
            return ex.SettingError ? ExitCodes.UsageError : ExitCodes.SomeFailed;
        }

        var counts = new Counts();
        var clock = Stopwatch.StartNew();
        var interactive = request.Interactive ?? (ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected);
        var length = input.CanSeek ? input.Length : 0;
        var publishing = PublishAllAsync(source, enqueuer, counts, stderr, cancellationToken);
        await ShowProgressAsync(publishing, enqueuer, counts, input, length, clock, interactive, stdout);
        await publishing;
        clock.Stop();
        return await SummarizeAsync(enqueuer, counts, clock.Elapsed, inputName, console);
    }

    private static async Task<int> SummarizeAsync(ICommandEnqueuer enqueuer, Counts counts, TimeSpan elapsed, string inputName, RunConsole console)
    {
        var (stdout, stderr) = (console.Out, console.Error);
        var stoppedBy = console.Stop.First;
        var stored = enqueuer.Enqueued;
        var seconds = Math.Max(elapsed.TotalSeconds, 1e-3);
        await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"enqueued {stored} commands from {TerminalText.Escape(inputName)} to {TerminalText.Escape(enqueuer.Destination)} in {elapsed.TotalSeconds:0.00} s ({stored / seconds:0}/s)"));
        if (enqueuer.Duplicates > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{enqueuer.Duplicates} {enqueuer.DuplicateMeaning}"));
        }

        if (counts.Malformed > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{counts.Malformed} malformed lines not published"));
        }

        if (enqueuer.Failed > 0)
        {
            await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{enqueuer.Failed} commands {enqueuer.FailureMeaning}"));
        }

        if (enqueuer.FatalError is { } fatal)
        {
            await stderr.WriteLineAsync($"error: {TerminalText.Escape(fatal, 2000)}");
            return ExitCodes.SomeFailed;
        }

        if (stoppedBy is not null && !counts.InputEnded)
        {
            await stderr.WriteLineAsync($"pipeline: {stoppedBy.Name}: stopped before the end of {TerminalText.Escape(inputName)}.");
            return stoppedBy.ExitCode;
        }

        return counts.Malformed > 0 || enqueuer.Failed > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
    }

    private static async Task PublishAllAsync(JsonLinesFileSource source, ICommandEnqueuer enqueuer, Counts counts, TextWriter stderr, CancellationToken cancellationToken)
    {
        long item = 0;
        try
        {
            while (!cancellationToken.IsCancellationRequested && enqueuer.FatalError is null)
            {
                if (await source.NextAsync(cancellationToken) is not { } pulled)
                {
                    counts.InputEnded = true;
                    break;
                }

                // The file source only counts outstanding deliveries; nothing is redelivered here.
                await source.AckAsync(pulled.Handle, CancellationToken.None);
                var outcome = pulled.Outcome;
                if (outcome.Kind == ClaimOutcomeKind.Claimed && outcome.Command is { } command)
                {
                    await enqueuer.EnqueueAsync(command, ++item, CancellationToken.None);
                    Interlocked.Increment(ref counts.Sent);
                    continue;
                }

                if (Interlocked.Increment(ref counts.Malformed) <= MaxListed)
                {
                    await stderr.WriteLineAsync($"error: {TerminalText.Escape(outcome.Reason, 1000)}; not published");
                }
                else if (counts.Malformed == MaxListed + 1)
                {
                    await stderr.WriteLineAsync($"error: more than {MaxListed} malformed lines; the rest are counted, not listed");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C or SIGTERM: stop reading; what was sent is still awaited below.
        }
        finally
        {
            await enqueuer.FlushAsync();
        }
    }

    private static void Report(TextWriter stderr, EnqueueFailure failure) =>
        stderr.WriteLine($"error: command {TerminalText.Escape(failure.CommandId)} (command #{failure.Tag.ToString(CultureInfo.InvariantCulture)} of the input) not published: {TerminalText.Escape(failure.Reason)}");

    private static async Task ShowProgressAsync(Task publishing, ICommandEnqueuer enqueuer, Counts counts, Stream input, long length, Stopwatch clock, bool interactive, TextWriter plain)
    {
        if (interactive)
        {
            await AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .StartAsync(async context =>
                {
                    var bar = context.AddTask("enqueue", maxValue: length > 0 ? length : 1);
                    bar.IsIndeterminate = length <= 0;
                    while (!publishing.IsCompleted)
                    {
                        await Task.WhenAny(publishing, Task.Delay(250));
                        bar.Description = Line(enqueuer, counts, clock);
                        if (length > 0)
                        {
                            bar.Value = Position(input, length);
                        }
                    }

                    bar.Value = bar.MaxValue;
                });
            return;
        }

        while (!publishing.IsCompleted)
        {
            await Task.WhenAny(publishing, Task.Delay(1000));
            if (!publishing.IsCompleted)
            {
                await plain.WriteLineAsync("progress: " + Line(enqueuer, counts, clock));
            }
        }
    }

    private static string Line(ICommandEnqueuer enqueuer, Counts counts, Stopwatch clock)
    {
        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
        return string.Create(CultureInfo.InvariantCulture, $"{enqueuer.StoredAs} {enqueuer.Enqueued}, {enqueuer.UnconfirmedAs} {Math.Max(0, Volatile.Read(ref counts.Sent) - enqueuer.Enqueued - enqueuer.Duplicates - enqueuer.Failed)}, malformed {Volatile.Read(ref counts.Malformed)}, {enqueuer.Enqueued / seconds:0}/s");
    }

    private static long Position(Stream input, long length)
    {
        try
        {
            return Math.Min(input.Position, length);
        }
        catch (ObjectDisposedException)
        {
            return length;
        }
    }

    private sealed class Counts
    {
        public long Sent;
        public long Malformed;
        public bool InputEnded;
    }
}
