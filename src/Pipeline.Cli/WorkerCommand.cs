using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Engine;
using Pipeline.Hosting;
using Pipeline.Modules;

namespace Pipeline.Cli;

/// <summary>
/// <c>pipeline worker --nats &lt;url&gt;</c>: the hosted worker (<see cref="PipelineWorkerServiceCollectionExtensions"/>)
/// on the source a module's flag selects (<c>--nats</c>: a JetStream durable consumer), until
/// stopped, or until nothing arrived for <c>--exit-when-idle</c> seconds; then the same summary
/// as <c>run</c>. Each module's flags are keys of its configuration section, laid over a
/// <c>--config</c> file's: one setting, one check, whether it came from a flag or a file.
/// </summary>
/// <remarks>
/// Stops follow <see cref="StopSignals"/>, not the host's console lifetime (which would end the
/// process on a second Ctrl+C and print its own lines): the first signal stops the host, which is
/// the pipeline's drain; a second one, or SIGQUIT, is <see cref="PipelineWorkerState.StopNow"/>.
/// Exit codes: 0 stopped (a signal, or idle) with every command done and none failed; 1 some
/// failed (a tool, a malformed message, a dropped event) or the worker faulted; 2 a usage or
/// configuration error; 3 an idle end with nothing failed while the backend still holds work
/// (<c>--exit-when-drained</c> waits for it); 128 + the signal when a stop cut work off (a second
/// signal, SIGQUIT, or the shutdown timeout): that work was nacked and is redelivered to the pool.
/// </remarks>
internal static class WorkerCommand
{
    public static Command Build(TextWriter stdout, TextWriter stderr, bool? interactive, StopSignals stop, IReadOnlyList<IPipelineModule> modules)
    {
        var registry = Registry(modules);
        var lines = modules.Select(m => m.WorkerCommandLine).OfType<ModuleCommandLine>().ToList();
        var selectors = string.Join(", ", lines.Select(l => l.Selector.Name));
        var arguments = new ModuleArguments(lines);
        var sinks = registry.SinkKinds.Where(k => k != CoreModule.StandardOutputKind).Select(k => $"'{k}'").ToList();
        var events = new Option<string?>("--events") { Description = $"Where events go: {string.Join(", ", sinks.Append("a JSON Lines file"))}, or '-' for stdout. Default: none." };
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
            Description = $"A JSON settings file: its Pipeline section configures the worker as appsettings.json does a hosted one (samples/appsettings.json lists every key). Flags given win over it; the connection is the file's unless the source's flag ({selectors}) is given. Default: none.",
            HelpName = "file",
        };

        var sources = string.Join("; ", lines.Select(l => $"{l.Selector.Name} {l.Selector.HelpName}: {l.Summary}"));
        var worker = new Command("worker", $"Run the worker on the source its flag chooses ({sources}) until stopped (Ctrl+C or SIGTERM drains), then print a summary.");
        arguments.AddTo(worker);
        worker.Options.Add(events);
        engine.AddTo(worker);
        // The worker's own extra, listed beside --ack-mode as help has always shown it.
        worker.Options.Insert(worker.Options.IndexOf(engine.AckMode) + 1, sinkFailure);
        worker.Options.Add(otlp);
        worker.Options.Add(otelConsole);
        worker.Options.Add(plain);
        worker.Options.Add(config);
        worker.SetAction(async (result, _) =>
        {
            if (result.GetValue(events) is { Length: 0 })
            {
                await stderr.WriteLineAsync($"error: --events must be {string.Join(", ", sinks.Append("a file"))} or '-', not ''.");
                return ExitCodes.UsageError;
            }

            if (engine.WorkerIdError(result) is { } workerIdError)
            {
                await stderr.WriteLineAsync(workerIdError);
                return ExitCodes.UsageError;
            }

            // Each setting: the flag when given, else the settings file's, else the module's default.
            var file = result.GetValue(config);
            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            if (file is not null)
            {
                if (await ReadSettingsAsync(file, stderr) is not { } read)
                {
                    return ExitCodes.UsageError;
                }

                foreach (var (key, value) in read.AsEnumerable().Where(s => s.Value is not null))
                {
                    settings[key] = value;
                }
            }

            // No source flag: the settings file's Source when a module runs it here, else the first module's (the embedded default).
            var sourceKey = $"{PipelineWorkerOptions.SectionName}:{nameof(PipelineWorkerOptions.Source)}";
            if (arguments.Selected(result, out var selectError, settings.GetValueOrDefault(sourceKey)) is not { } line)
            {
                await stderr.WriteLineAsync($"error: {selectError ?? "no module offers a source to run a worker on."}");
                return ExitCodes.UsageError;
            }

            arguments.Apply(result, line, settings);
            settings[sourceKey] = line.SourceKind;
            if (line.Check?.Invoke(arguments.Values(result, line, settings, settingsFile: file is not null)) is { Count: > 0 } flagErrors)
            {
                foreach (var error in flagErrors)
                {
                    await stderr.WriteLineAsync($"error: {TerminalText.Escape(error)}");
                }

                return ExitCodes.UsageError;
            }

            var section = new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(PipelineWorkerOptions.SectionName);
            var basis = PipelineWorkerServiceCollectionExtensions.Bind(section);
            var given = (Option o) => EngineArguments.IsGiven(result, o);
            var options = basis with
            {
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
            return await ExecuteAsync(new WorkerRequest(options, section, modules), new RunConsole(stdout, stderr, Console.OpenStandardInput, stop), result.GetValue(plain) ? false : interactive);
        });
        return worker;
    }

    public static async Task<int> ExecuteAsync(WorkerRequest request, RunConsole console, bool? interactive)
    {
        var (options, stderr) = (request.Options, console.Error);
        var registry = Registry(request.Modules);
        var setup = WorkerModules.Prepare(registry, options, request.Section);
        if (!await CheckAsync(request, registry, stderr))
        {
            return ExitCodes.UsageError;
        }

        await using var session = new RunSession(console, eventsOnStdout: options.Events == CoreModule.StandardOutputKind, verb: "worker");
        IHostApplicationLifetime? stopping = null;
        using var host = BuildHost(request, session, registry.IsLocal(options.Events) ? () => stopping?.StopApplication() : null);
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        stopping = host.Services.GetRequiredService<IHostApplicationLifetime>();
        session.OnStop(options.Engine.ShutdownTimeout, graceful: stopping.StopApplication, now: state.StopNow);
        try
        {
            await host.StartAsync(CancellationToken.None);
        }
        catch (OptionsValidationException ex)
        {
            await WriteErrorsAsync(stderr, ex.Failures);
            return ExitCodes.UsageError;
        }

        var source = setup.Source!;
        await stderr.WriteLineAsync($"pipeline worker: consuming {TerminalText.Escape(source.ToString())}{source.Ending} (Ctrl+C or SIGTERM drains)");
        session.Clock.Start();
        // Started now: a stop (StopApplication) becomes the host's StopAsync, the pipeline's drain.
        var shutdown = host.WaitForShutdownAsync();
        PipelineStats? stats = null;
        try
        {
            stats = await state.Started;
            await session.ShowProgressAsync(state.Completion, stats, interactive, TimeSpan.FromSeconds(10), "pipeline worker");
        }
        catch (Exception)
        {
            // The worker failed to build its pipeline; the fault is reported below.
        }

        await shutdown;
        session.Clock.Stop();
        return await FinishAsync(state, stats, session, source.Where, setup.EventsName, options.Engine.AckMode, console);
    }

    /// <summary>The worker's settings file: its <c>Pipeline</c> section (as a hosted worker binds appsettings.json); null, having said why, when it cannot be read.</summary>
    internal static async Task<IConfigurationSection?> ReadSettingsAsync(string file, TextWriter stderr)
    {
        // Read once and bounded: a directory, a device (/dev/zero was read without end) or a FIFO is refused unread.
        if (SettingFile.TryRead(Path.GetFullPath(file), out var problem) is not { } text)
        {
            await stderr.WriteLineAsync($"error: --config '{TerminalText.Escape(file)}' {TerminalText.Escape(problem)}.");
            return null;
        }

        try
        {
            using var json = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
            var section = new ConfigurationBuilder().AddJsonStream(json).Build().GetSection(PipelineWorkerOptions.SectionName);
            // Bound once here, so a value of the wrong type is an error naming the file.
            _ = PipelineWorkerServiceCollectionExtensions.Bind(section);
            return section;
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or InvalidOperationException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            await stderr.WriteLineAsync($"error: --config '{TerminalText.Escape(file)}' cannot be read: {TerminalText.Escape(ex.Message, 500)}");
            return null;
        }
    }

    private static PipelineModules Registry(IEnumerable<IPipelineModule> modules) => new(modules.Append(CoreModule.Instance));

    // Checked before anything is connected: the settings (a usage error listing every one), then an events file that cannot be created.
    private static async Task<bool> CheckAsync(WorkerRequest request, PipelineModules registry, TextWriter stderr)
    {
        var invalid = new PipelineWorkerOptionsValidator(registry, request.Section).Validate(null, request.Options);
        if (invalid.Failed)
        {
            await WriteErrorsAsync(stderr, invalid.Failures);
            return false;
        }

        if (registry.IsFilePath(request.Options.Events))
        {
            try
            {
                using var probe = new FileStream(request.Options.Events!, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"error: cannot write events to {TerminalText.Escape(request.Options.Events)}: {TerminalText.Escape(FileErrors.Reason(request.Options.Events!, ex))}");
                return false;
            }
        }

        return true;
    }

    private static async Task WriteErrorsAsync(TextWriter stderr, IEnumerable<string> failures)
    {
        foreach (var failure in failures)
        {
            await stderr.WriteLineAsync($"error: {TerminalText.Escape(failure)}");
        }
    }

    // The host: the modules, the worker with the session's sink wrappers, and the terminal's logging.
    private static IHost BuildHost(WorkerRequest request, RunSession session, Action? stopOnEventsFailure)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        // StopSignals own the signals; the host's console lifetime would fight them.
        builder.Services.AddSingleton<IHostLifetime, SignalLifetime>();
        builder.Logging.SetMinimumLevel(LogLevel.Warning)
            .AddConsole(o => (o.LogToStandardErrorThreshold, o.FormatterName) = (LogLevel.Trace, TerminalLogFormatter.FormatterName))
            .AddConsoleFormatter<TerminalLogFormatter, Microsoft.Extensions.Logging.Console.ConsoleFormatterOptions>();
        // An events file (or stdout) that cannot be written stops the worker as it stops 'run':
        // commands run on would leave no record, and back-pressure would hold the work forever.
        // Events to a server wait for it instead (it comes back).
        builder.Services.AddSingleton(new PipelineWorkerHooks { WrapSink = sink => session.Record(sink, stopOnEventsFailure) });
        foreach (var module in request.Modules)
        {
            builder.Services.AddPipelineModule(module);
        }

        builder.Services.AddPipelineWorker(request.Section, _ => request.Options);
        return builder.Build();
    }

    private static async Task<int> FinishAsync(PipelineWorkerState state, PipelineStats? stats, RunSession session, string where, string? eventsName, AckMode ackMode, RunConsole console)
    {
        var (stderr, stopNow) = (console.Error, console.Stop.Now);
        if (state.Fault is ModuleRunException said)
        {
            // A module's own account of why it could not go on (a store that cannot be used): said once, as it is.
            await stderr.WriteLineAsync(TerminalText.Escape($"error: {said.Message}", 2000));
        }
        else if (state.Fault is { } fault)
        {
            var inner = fault.InnerException is { } cause ? $" {cause.Message}" : string.Empty;
            await stderr.WriteLineAsync(TerminalText.Escape($"error: the worker stopped: {fault.GetType().Name}: {fault.Message}{inner}", 2000));
        }

        if (stats is null)
        {
            if (state.Outcome == PipelineWorkerOutcome.ConfigurationError)
            {
                // The host's own check refused what the command line's passed (a file changed in between).
                await stderr.WriteLineAsync(TerminalText.Escape($"pipeline worker: {string.Join(" ", state.ConfigurationErrors)}", 2000));
                return ExitCodes.UsageError;
            }

            if (state.Fault is null)
            {
                await stderr.WriteLineAsync($"pipeline worker: stopped before {TerminalText.Escape(where)} was reached; nothing was pulled");
                return ExitCodes.Success;
            }

            return ExitCodes.SomeFailed;
        }

        var summary = session.Summarize(stats) with
        {
            Left = state.WorkLeft,
            // A worker that stopped on an error (a store that cannot be used) did not succeed, whatever its counts say.
            StoppedBecause = state.Fault is null ? null : "on the error above",
        };
        // An idle end while the backend still holds work is not "all succeeded": a batch job
        // would take the work for done (exit 3, WorkLeft; failures here still make it 1).
        var exitCode = summary.AllSucceeded && state.Fault is null ? (summary.WorkLeft ? ExitCodes.WorkLeft : ExitCodes.Success) : ExitCodes.SomeFailed;
        return await session.FinishAsync(summary, exitCode, where, eventsName, (request, done) =>
        {
            if (stopNow.IsCancellationRequested || state.DeadlineReached || done.Unfinished > 0)
            {
                // Work was cut off (nacked, to be redelivered to the pool), not drained.
                // Ack before dispatch: a tool cut off had been acked as it started and is not redelivered.
                var fate = ackMode == AckMode.AckBeforeDispatch
                    ? "those not started were handed back for redelivery; tools cut off had been acked as they started and are not redelivered"
                    : "they were nacked for redelivery";
                return ($"by {request.Name} before the commands in flight were done ({fate})", request.ExitCode);
            }

            var handedBack = done.HandedBack > 0 ? $"; {done.HandedBack} not started were handed back for redelivery" : "";
            return (done.AllSucceeded ? $"by {request.Name}; every tool running finished{handedBack}" : null, null);
        });
    }

    /// <summary>A host lifetime that only waits: start and stop come from <see cref="StopSignals"/> and the worker.</summary>
    private sealed class SignalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>What <c>pipeline worker</c> was asked to do.</summary>
/// <param name="Options">The worker's options: the settings file's, the flags' over them.</param>
/// <param name="Section">The merged <c>Pipeline</c> section the modules read their own sections from.</param>
/// <param name="Modules">The modules the command line was built with (the built-in one is added).</param>
internal sealed record WorkerRequest(PipelineWorkerOptions Options, IConfiguration Section, IReadOnlyList<IPipelineModule> Modules);
