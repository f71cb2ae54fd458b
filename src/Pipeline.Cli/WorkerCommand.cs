using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Engine;
using Pipeline.Hosting;
using Pipeline.Modules;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Modules;
using Pipeline.Nats.Sources;

namespace Pipeline.Cli;

/// <summary>
/// <c>pipeline worker --nats &lt;url&gt;</c>: the hosted worker (<see cref="PipelineWorkerServiceCollectionExtensions"/>)
/// on a JetStream durable consumer, until stopped, or until nothing arrived for
/// <c>--exit-when-idle</c> seconds; then the same summary as <c>run</c>.
/// </summary>
/// <remarks>
/// Stops follow <see cref="StopSignals"/>, not the host's console lifetime (which would end the
/// process on a second Ctrl+C and print its own lines): the first signal stops the host, which is
/// the pipeline's drain; a second one, or SIGQUIT, is <see cref="PipelineWorkerState.StopNow"/>.
/// Exit codes: 0 stopped (a signal, or idle) with every command done and none failed; 1 some
/// failed (a tool, a malformed message, a dropped event) or the worker faulted; 2 a usage or
/// configuration error; 3 an idle end with nothing failed while the consumer still holds work
/// (<c>--exit-when-drained</c> waits for it); 128 + the signal when a stop cut work off (a second
/// signal, SIGQUIT, or the shutdown timeout): that work was nacked and is redelivered to the pool.
/// </remarks>
internal static class WorkerCommand
{
    /// <summary>The longest <c>--exit-when-idle</c>: one day, in seconds.</summary>
    public const int MaxIdleSeconds = 86_400;

    public static Command Build(TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals stop)
    {
        var nats = new NatsSourceOptions();
        // --nats, the credentials and TLS: the same options, checks and messages as 'enqueue'.
        var connectionArguments = new Nats.NatsConnectionArguments();
        var stream = new Option<string>("--stream") { Description = $"The JetStream stream of commands. Default: {nats.Stream}.", DefaultValueFactory = _ => nats.Stream };
        var subject = new Option<string>("--subjects") { Description = $"The stream's subjects when it is created, comma-separated. Default: {string.Join(',', nats.Subjects)}.", DefaultValueFactory = _ => string.Join(',', nats.Subjects) };
        var consumer = new Option<string>("--consumer") { Description = $"The durable pull consumer the pool of workers shares. Default: {nats.Consumer}.", DefaultValueFactory = _ => nats.Consumer };
        var bindOnly = new Option<bool>("--bind-only") { Description = "Only bind to an existing stream and consumer; never create or update them. Default: create when missing." };
        var maxAckPending = PipelineCli.Int("--max-ack-pending", "The consumer's most unacked messages across the pool; at least --max-in-flight + --fetch-batch.", nats.MaxAckPending, 1, 1_000_000);
        var ackWait = PipelineCli.Int("--ack-wait-ms", "How long the server waits for an ack before redelivering, in milliseconds (held messages are renewed at a third of it).", (int)nats.AckWait.TotalMilliseconds, 1000, PipelineCli.MaxTimeoutMs);
        var maxDeliver = PipelineCli.Int("--max-deliver", "Most deliveries of one message (-1: no limit); at least --max-attempts with after-dispatch.", (int)nats.MaxDeliver, -1, 1_000_000);
        var fetchBatch = PipelineCli.Int("--fetch-batch", "Most messages one fetch asks for (held ahead of the pipeline).", nats.FetchBatch, 1, 10_000);
        var kvClaimer = new Option<bool>("--kv-claimer") { Description = "Claim each command_id in a NATS KV bucket, so a command published twice runs once. Default: off." };
        var kvBucket = new Option<string>("--kv-bucket") { Description = "The claim bucket, with --kv-claimer. Default: pipeline_claims.", DefaultValueFactory = _ => "pipeline_claims" };
        var events = new Option<string?>("--events") { Description = "Where events go: 'nats' (a JetStream subject per execution), a JSON Lines file, or '-' for stdout. Default: none." };
        var exitWhenIdle = PipelineCli.Int("--exit-when-idle", "End once nothing has arrived for this many seconds, and print the summary (batch jobs, tests). Default: run until stopped.", 0, 1, MaxIdleSeconds);
        exitWhenIdle.DefaultValueFactory = null;
        var exitWhenDrained = PipelineCli.Int("--exit-when-drained", "With --exit-when-idle: once idle, while the consumer still holds messages (awaiting an ack, e.g. a killed worker's, or pending), keep running what comes back until it holds none, for at most this many seconds with nothing arriving. Default: exit at the first idle, reporting what it holds (exit 3).", 0, 1, MaxIdleSeconds);
        exitWhenDrained.DefaultValueFactory = null;
        var engine = new EngineArguments(worker: true);
        var sinkFailure = new Option<string>("--sink-failure") { Description = "While the event sink fails: backpressure (hold work until it takes events) or drop (retry, then drop and count).", DefaultValueFactory = _ => "backpressure" };
        sinkFailure.AcceptOnlyFromAmong("backpressure", "drop");
        var otlp = new Option<Uri?>("--otlp-endpoint")
        {
            Description = "Export the pipeline's traces and metrics over OTLP to this endpoint, e.g. http://127.0.0.1:4317. Default: no export.",
            // System.CommandLine has no converter for Uri: without this parser every value failed with an unhandled exception.
            CustomParser = static argument =>
            {
                var text = argument.Tokens.Count == 1 ? argument.Tokens[0].Value : string.Empty;
                if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
                {
                    return uri;
                }

                argument.AddError($"--otlp-endpoint must be an http:// or https:// URL (e.g. http://127.0.0.1:4317), not '{text}'.");
                return null;
            },
        };
        var otelConsole = new Option<bool>("--otel-console") { Description = "Write the pipeline's spans and metrics to stdout. Default: off." };
        var plain = new Option<bool>("--plain") { Description = "Plain progress lines (every 10 s) even on a terminal." };
        var config = new Option<string?>("--config")
        {
            Description = "A JSON settings file: its Pipeline section configures the worker as appsettings.json does a hosted one (samples/appsettings.json lists every key). Flags given win over it; the connection is the file's unless --nats is given. Default: none.",
            HelpName = "file",
        };

        var worker = new Command("worker", "Run the worker on a NATS JetStream durable consumer until stopped (Ctrl+C or SIGTERM drains), then print a summary.")
        {
            stream, subject, consumer, bindOnly, maxAckPending, ackWait, maxDeliver, fetchBatch, kvClaimer, kvBucket, events, exitWhenIdle, exitWhenDrained,
        };
        engine.AddTo(worker);
        // The worker's own extra, listed beside --ack-mode as help has always shown it.
        worker.Options.Insert(worker.Options.IndexOf(engine.AckMode) + 1, sinkFailure);
        worker.Options.Add(otlp);
        worker.Options.Add(otelConsole);
        worker.Options.Add(plain);
        worker.Options.Add(config);
        connectionArguments.AddTo(worker, settingsFile: config);
        worker.SetAction(async (result, _) =>
        {
            if (result.GetValue(events) is { Length: 0 })
            {
                await stderr.WriteLineAsync("error: --events must be 'nats', a file or '-', not ''.");
                return ExitCodes.UsageError;
            }

            if (engine.WorkerIdError(result) is { } workerIdError)
            {
                await stderr.WriteLineAsync(workerIdError);
                return ExitCodes.UsageError;
            }

            var basis = new PipelineWorkerOptions();
            var natsBasis = new NatsWorkerOptions();
            if (result.GetValue(config) is { } file)
            {
                if (await ReadSettingsAsync(file, stderr) is not { } read)
                {
                    return ExitCodes.UsageError;
                }

                (basis, natsBasis) = (read.Worker, read.Nats);
            }

            // Each setting: the flag when given, else the settings file's, else the default.
            var given = (Option o) => EngineArguments.IsGiven(result, o);
            var source = natsBasis.Source;
            var idle = given(exitWhenIdle) ? TimeSpan.FromSeconds(result.GetValue(exitWhenIdle)) : source.IdleTimeout;
            var drain = given(exitWhenDrained) ? TimeSpan.FromSeconds(result.GetValue(exitWhenDrained)) : source.DrainTimeout;
            if (drain is { } d && (idle is not { } i || d < i))
            {
                await stderr.WriteLineAsync("error: --exit-when-drained needs --exit-when-idle (the quiet time that ends the run), and must be at least as long.");
                return ExitCodes.UsageError;
            }
            var nats = natsBasis with
            {
                Connection = connectionArguments.IsGiven(result) || natsBasis.Connection is null ? connectionArguments.Read(result) : natsBasis.Connection,
                Source = source with
                {
                    Stream = EngineArguments.Given(result, stream, source.Stream),
                    Subjects = given(subject) ? [.. result.GetValue(subject)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)] : source.Subjects,
                    Consumer = EngineArguments.Given(result, consumer, source.Consumer),
                    CreateIfMissing = given(bindOnly) ? !result.GetValue(bindOnly) : source.CreateIfMissing,
                    MaxAckPending = EngineArguments.Given(result, maxAckPending, source.MaxAckPending),
                    AckWait = given(ackWait) ? TimeSpan.FromMilliseconds(result.GetValue(ackWait)) : source.AckWait,
                    MaxDeliver = given(maxDeliver) ? result.GetValue(maxDeliver) : source.MaxDeliver,
                    FetchBatch = EngineArguments.Given(result, fetchBatch, source.FetchBatch),
                    IdleTimeout = idle,
                    DrainTimeout = drain,
                },
                KvClaimer = given(kvClaimer) ? result.GetValue(kvClaimer) : natsBasis.KvClaimer,
                Claimer = natsBasis.Claimer with { Bucket = EngineArguments.Given(result, kvBucket, natsBasis.Claimer.Bucket)! },
            };
            var options = basis with
            {
                Source = NatsModule.Kind,
                Events = result.GetValue(events) ?? basis.Events,
                Engine = engine.Read(result, basis.Engine) with
                {
                    SinkFailure = given(sinkFailure)
                        ? (result.GetValue(sinkFailure) == "drop" ? SinkFailureAction.Drop : SinkFailureAction.Backpressure)
                        : basis.Engine.SinkFailure,
                },
                Tools = new ToolOptions
                {
                    EnableShell = given(engine.EnableShell) ? result.GetValue(engine.EnableShell) : basis.Tools.EnableShell,
                    MaxOutputBytes = EngineArguments.Given(result, engine.MaxOutput, basis.Tools.MaxOutputBytes),
                },
                Telemetry = basis.Telemetry with
                {
                    OtlpEndpoint = result.GetValue(otlp) ?? basis.Telemetry.OtlpEndpoint,
                    Console = given(otelConsole) ? result.GetValue(otelConsole) : basis.Telemetry.Console,
                },
            };
            return await ExecuteAsync(options, nats, new RunConsole(stdout, stderr, Console.OpenStandardInput, stop), result.GetValue(plain) ? false : interactive);
        });
        return worker;
    }

    public static async Task<int> ExecuteAsync(PipelineWorkerOptions options, NatsWorkerOptions nats, RunConsole console, bool? interactive)
    {
        var (stdout, stderr, stop) = (console.Out, console.Error, console.Stop);
        var where = nats.Connection?.DisplayUrl ?? "(no server)";
        // Validated here too, so a bad combination is a usage error before any connection is made.
        var invalid = new PipelineWorkerOptionsValidator(new PipelineModules([new NatsModule(_ => nats), CoreModule.Instance])).Validate(null, options);
        if (invalid.Failed)
        {
            foreach (var failure in invalid.Failures)
            {
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(failure)}");
            }

            return ExitCodes.UsageError;
        }

        // An events file that cannot be created is a usage error before anything is pulled, as for run.
        if (options.Events is { } eventsPath and not "nats" and not "-")
        {
            try
            {
                using var probe = new FileStream(eventsPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(eventsPath)}: {TerminalText.Escape(ex.Message)}");
                return ExitCodes.UsageError;
            }
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        // StopSignals own the signals; the host's console lifetime would fight them.
        builder.Services.AddSingleton<IHostLifetime, SignalLifetime>();
        builder.Logging.SetMinimumLevel(LogLevel.Warning)
            .AddConsole(o => (o.LogToStandardErrorThreshold, o.FormatterName) = (LogLevel.Trace, TerminalLogFormatter.FormatterName))
            .AddConsoleFormatter<TerminalLogFormatter, Microsoft.Extensions.Logging.Console.ConsoleFormatterOptions>();
        FailureRecorder? recorder = null;
        StopOnSinkFailure? eventsGuard = null;
        IHostApplicationLifetime? stopping = null;
        builder.Services.AddSingleton(new PipelineWorkerHooks
        {
            WrapSink = sink =>
            {
                // An events file (or stdout) that cannot be written stops the worker as it stops
                // 'run': commands run on would leave no record, and back-pressure would hold the
                // work forever. Events to NATS wait for the server instead (it comes back).
                if (options.Events is not null and not "nats")
                {
                    sink = eventsGuard = new StopOnSinkFailure(sink, () => stopping?.StopApplication());
                }

                return recorder = new FailureRecorder(sink, keep: RunSummary.MaxListed);
            },
        });
        builder.Services.AddPipelineNats(_ => nats);
        builder.Services.AddPipelineWorker(_ => options);
        using var host = builder.Build();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        stopping = lifetime;
        var human = options.Events == "-" ? stderr : stdout;
        var shutdownMs = options.Engine.ShutdownTimeout.TotalMilliseconds;

        await using var onStop = stop.Graceful.Register(() =>
        {
            if (!stop.Now.IsCancellationRequested && stop.First is { } first)
            {
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pipeline: {first.Name}: stopping; commands in flight have {shutdownMs:0} ms to finish (again to stop now)"));
            }

            lifetime.StopApplication();
        });
        await using var onStopNow = stop.Now.Register(() =>
        {
            stderr.WriteLine("pipeline: stopping now; commands still open are nacked");
            state.StopNow();
        });

        try
        {
            await host.StartAsync(CancellationToken.None);
        }
        catch (OptionsValidationException ex)
        {
            foreach (var failure in ex.Failures)
            {
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(failure)}");
            }

            return ExitCodes.UsageError;
        }

        var idle = nats.Source.IdleTimeout is not { } t ? string.Empty
            : nats.Source.DrainTimeout is { } d ? string.Create(CultureInfo.InvariantCulture, $", ending after {t.TotalSeconds:0} s idle once the consumer holds nothing (at most {d.TotalSeconds:0} s idle while it does)")
            : string.Create(CultureInfo.InvariantCulture, $", ending after {t.TotalSeconds:0} s idle");
        await stderr.WriteLineAsync($"pipeline worker: consuming {TerminalText.Escape(where)} stream {nats.Source.Stream} consumer {nats.Source.Consumer}{idle} (Ctrl+C or SIGTERM drains)");
        var clock = Stopwatch.StartNew();
        // Started now: a stop (StopApplication) becomes the host's StopAsync, the pipeline's drain.
        var shutdown = host.WaitForShutdownAsync();
        PipelineStats? stats = null;
        try
        {
            stats = await state.Started;
            var showInteractive = interactive ?? (ReferenceEquals(human, Console.Out) && !Console.IsOutputRedirected);
            await ProgressDisplay.ShowAsync(state.Completion, stats, clock, showInteractive, human, TimeSpan.FromSeconds(10), "pipeline worker");
        }
        catch (Exception)
        {
            // The worker failed to build its pipeline; the fault is reported below.
        }

        await shutdown;
        clock.Stop();
        if (state.Fault is { } fault)
        {
            await stderr.WriteLineAsync(TerminalText.Escape($"error: the worker stopped: {fault.GetType().Name}: {fault.Message} {fault.InnerException?.Message}", 2000));
        }

        if (stats is null)
        {
            if (state.Fault is null)
            {
                await stderr.WriteLineAsync($"pipeline worker: stopped before {TerminalText.Escape(where)} was reached; nothing was pulled");
                return ExitCodes.Success;
            }

            return ExitCodes.SomeFailed;
        }

        var summary = RunSummary.From(stats, recorder?.Failures ?? [], clock.Elapsed) with
        {
            Unfinished = recorder?.Unfinished ?? 0,
            Left = state.WorkLeft,
        };
        // An idle end while the consumer still holds work is not "all succeeded": a batch job
        // would take the work for done (exit 3, WorkLeft; failures here still make it 1).
        var exitCode = summary.AllSucceeded && state.Fault is null ? (summary.WorkLeft ? ExitCodes.WorkLeft : ExitCodes.Success) : ExitCodes.SomeFailed;
        var eventsName = options.Events switch { null => null, "-" => "stdout", "nats" => $"NATS subjects {nats.Events.SubjectTemplate}", var path => path };
        if (eventsGuard?.Failure is { } eventsFailure)
        {
            var why = TerminalText.Escape(eventsFailure.InnerException?.Message ?? eventsFailure.Message);
            await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(eventsName)}: {why}; the worker stopped.");
            summary = summary with { StoppedBecause = $"because the events file could not be written ({why})" };
            exitCode = ExitCodes.SomeFailed;
        }
        else if (stop.First is { } request && (stop.Now.IsCancellationRequested || state.DeadlineReached || summary.Unfinished > 0))
        {
            // Work was cut off (nacked, to be redelivered to the pool), not drained.
            // Ack before dispatch: a tool cut off had been acked as it started and is not redelivered.
            var fate = options.Engine.AckMode == AckMode.AckBeforeDispatch
                ? "those not started were handed back for redelivery; tools cut off had been acked as they started and are not redelivered"
                : "they were nacked for redelivery";
            summary = summary with { StoppedBecause = $"by {request.Name} before the commands in flight were done ({fate})" };
            exitCode = request.ExitCode;
        }
        else if (stop.First is { } drained)
        {
            var handedBack = summary.HandedBack > 0 ? $"; {summary.HandedBack} not started were handed back for redelivery" : "";
            summary = summary with { StoppedBecause = summary.AllSucceeded ? $"by {drained.Name}; every tool running finished{handedBack}" : null };
        }

        try
        {
            await summary.WriteAsync(human, where, eventsName, verb: "worker");
        }
        catch (IOException ex)
        {
            await stderr.WriteLineAsync($"error: cannot write the summary: {TerminalText.Escape(ex.Message)}");
        }

        return exitCode;
    }

    /// <summary>The worker's settings from a JSON file's <c>Pipeline</c> section (as a hosted worker binds appsettings.json); null, having said why, when it cannot be read.</summary>
    internal static async Task<(PipelineWorkerOptions Worker, NatsWorkerOptions Nats)?> ReadSettingsAsync(string file, TextWriter stderr)
    {
        var path = Path.GetFullPath(file);
        if (!File.Exists(path))
        {
            await stderr.WriteLineAsync($"error: --config '{TerminalText.Escape(file)}' does not exist.");
            return null;
        }

        try
        {
            var configuration = new ConfigurationBuilder().AddJsonFile(path, optional: false, reloadOnChange: false).Build();
            var section = configuration.GetSection(PipelineWorkerOptions.SectionName);
            return (PipelineWorkerServiceCollectionExtensions.Bind(section), NatsModule.Bind(section.GetSection(NatsModule.SectionName)));
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"error: --config '{TerminalText.Escape(file)}' cannot be read: {TerminalText.Escape(ex.Message, 500)}");
            return null;
        }
    }

    /// <summary>A host lifetime that only waits: start and stop come from <see cref="StopSignals"/> and the worker.</summary>
    private sealed class SignalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
