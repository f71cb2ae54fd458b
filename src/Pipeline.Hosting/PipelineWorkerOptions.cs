using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Modules;

namespace Pipeline.Hosting;

/// <summary>
/// Everything a hosted worker is configured with, bound from the <c>Pipeline</c> section of the
/// host's configuration (appsettings.json, environment variables such as
/// <c>PIPELINE__SOURCE=nats</c>, the command line such as <c>--Pipeline:Source=nats</c>).
/// Immutable (init-only, NATS.Net style); every property has a documented default; the whole is
/// validated when the host starts (see <see cref="PipelineWorkerOptionsValidator"/>). A backend's
/// own settings are its module's (<see cref="IPipelineModule"/>), in its section under
/// <c>Pipeline</c>: <c>Pipeline:Nats</c> for the NATS module (<c>services.AddPipelineNats()</c>).
/// </summary>
public sealed record PipelineWorkerOptions
{
    /// <summary>The configuration section <see cref="PipelineWorkerServiceCollectionExtensions.AddPipelineWorker(Microsoft.Extensions.Hosting.IHostApplicationBuilder)"/> binds.</summary>
    public const string SectionName = "Pipeline";

    /// <summary>
    /// Where commands come from: a source kind of a registered module, <c>file</c> (a JSON Lines
    /// file, the embedded default, built in), <c>sqlite</c> (a queued-work store in a file, with
    /// <c>services.AddPipelineSqlite()</c>) or <c>nats</c> (a JetStream durable consumer, with the
    /// NATS module). Default <c>file</c>.
    /// </summary>
    public string Source { get; init; } = CoreModule.FileKind;

    /// <summary>With <see cref="Source"/> <c>file</c>: the JSON Lines commands file. Required there.</summary>
    public string? CommandsFile { get; init; }

    /// <summary>
    /// Who claims each command before it runs: a claimer kind of a registered module
    /// (<c>nats-kv</c>: a KV bucket, so a command published twice runs once), or <c>none</c>.
    /// Default null: the source module's older setting decides (<c>Pipeline:Nats:KvClaimer=true</c>
    /// is an alias of <c>nats-kv</c>), else none.
    /// </summary>
    public string? Claimer { get; init; }

    /// <summary>
    /// Where events go: null for nowhere (counted only), a sink kind of a registered module
    /// (<c>nats</c>: a JetStream subject per execution, with the NATS module; <c>-</c>: stdout),
    /// anything else a JSON Lines file. Default null.
    /// </summary>
    public string? Events { get; init; }

    /// <summary>The engine: block parallelism, the in-flight bound, ack mode, timeouts, sink failure mode (<see cref="PipelineOptions.SinkFailure"/>).</summary>
    public PipelineOptions Engine { get; init; } = new();

    /// <summary>The built-in tools: the shell tool (off by default) and the output cap.</summary>
    public ToolOptions Tools { get; init; } = new();

    /// <summary>OpenTelemetry export. Default: off.</summary>
    public TelemetryOptions Telemetry { get; init; } = new();

    /// <summary>
    /// Stop the host once the pipeline ends by itself (the file is read, the NATS source went idle
    /// for <c>Pipeline:Nats:Source:IdleTimeout</c>). Default true.
    /// </summary>
    public bool StopHostWhenDone { get; init; } = true;

    /// <summary>
    /// Set the process's exit code (<see cref="Environment.ExitCode"/>, what <c>host.Run()</c>
    /// returns to the OS from a <c>Main</c> that returns nothing) from the run's outcome:
    /// <see cref="PipelineWorkerState.ExitCode"/> (0 all done, 1 some failed, 2 a configuration
    /// error, 3 work left at an idle end, 128 + the signal when a stop cut work off). Turn it off
    /// when the worker is one part of a larger process that decides its own code. Default true.
    /// </summary>
    public bool SetExitCode { get; init; } = true;

    /// <summary>
    /// What is added to <see cref="PipelineOptions.ShutdownTimeout"/> + <see cref="PipelineOptions.SettleTimeout"/>
    /// for the host's own shutdown timeout, so the host never abandons a drain the pipeline would
    /// finish. From 0 to 1 day. Default 5 s.
    /// </summary>
    public TimeSpan ShutdownMargin { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The least <c>HostOptions.ShutdownTimeout</c> this worker needs: the pipeline's drain, its
    /// last settles, then the margin (flushing events and closing connections).
    /// </summary>
    public TimeSpan RequiredHostShutdownTimeout => Engine.ShutdownTimeout + Engine.SettleTimeout + ShutdownMargin;
}

/// <summary>The built-in tools' settings a worker takes from configuration.</summary>
public sealed record ToolOptions
{
    /// <summary>Register the shell tool (runs programs on this machine). Default false.</summary>
    public bool EnableShell { get; init; }

    /// <summary>Most bytes of output a tool keeps. Default 64 KiB.</summary>
    [SettingRange(1, BuiltInToolOptions.HardMaxOutputBytes)]
    public int MaxOutputBytes { get; init; } = BuiltInToolOptions.DefaultMaxOutputBytes;

    /// <summary>The built-in tools' options these settings make.</summary>
    internal BuiltInToolOptions ToBuiltIn() => new() { EnableShell = EnableShell, MaxOutputBytes = MaxOutputBytes };
}

/// <summary>OpenTelemetry export of the <c>Pipeline</c> traces and metrics. Off unless an endpoint is set or the console is asked for.</summary>
public sealed record TelemetryOptions
{
    /// <summary>The OTLP endpoint (e.g. <c>http://127.0.0.1:4317</c>); null exports nothing over OTLP. Default null.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>The OTLP protocol: <c>grpc</c> or <c>http/protobuf</c>. Default <c>grpc</c>.</summary>
    public string OtlpProtocol { get; init; } = "grpc";

    /// <summary>Also write spans and metrics to the console (stdout). Default false.</summary>
    public bool Console { get; init; }

    /// <summary>The <c>service.name</c> resource attribute. Default <c>pipeline</c>.</summary>
    public string ServiceName { get; init; } = "pipeline";

    /// <summary>How often metrics are exported. More than 0, at most 1 day. Default 10 s.</summary>
    public TimeSpan MetricInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Whether anything is exported at all.</summary>
    public bool Enabled => OtlpEndpoint is not null || Console;
}
