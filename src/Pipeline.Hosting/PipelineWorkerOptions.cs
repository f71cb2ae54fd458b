using Pipeline.Dispatch;
using Pipeline.Engine;
using Pipeline.Nats.Claiming;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Events;
using Pipeline.Nats.Sources;

namespace Pipeline.Hosting;

/// <summary>
/// Everything a hosted worker is configured with, bound from the <c>Pipeline</c> section of the
/// host's configuration (appsettings.json, environment variables such as
/// <c>PIPELINE__SOURCE=nats</c>, the command line such as <c>--Pipeline:Source=nats</c>).
/// Immutable (init-only, NATS.Net style); every property has a documented default; the whole is
/// validated when the host starts (see <see cref="PipelineWorkerOptionsValidator"/>).
/// </summary>
public sealed record PipelineWorkerOptions
{
    /// <summary>The configuration section <see cref="PipelineWorkerServiceCollectionExtensions.AddPipelineWorker(Microsoft.Extensions.Hosting.IHostApplicationBuilder)"/> binds.</summary>
    public const string SectionName = "Pipeline";

    /// <summary>Where commands come from: <c>nats</c> (a JetStream durable consumer) or <c>file</c> (a JSON Lines file, the embedded default). Default <c>file</c>.</summary>
    public string Source { get; init; } = SourceKinds.File;

    /// <summary>With <see cref="Source"/> <c>file</c>: the JSON Lines commands file. Required there.</summary>
    public string? CommandsFile { get; init; }

    /// <summary>
    /// Where events go: null for nowhere (counted only), <c>nats</c> for a JetStream subject per
    /// execution (<see cref="NatsWorkerOptions.Events"/>), <c>-</c> for stdout, anything else a
    /// JSON Lines file. Default null.
    /// </summary>
    public string? Events { get; init; }

    /// <summary>The engine: block parallelism, the in-flight bound, ack mode, timeouts, sink failure mode (<see cref="PipelineOptions.SinkFailure"/>).</summary>
    public PipelineOptions Engine { get; init; } = new();

    /// <summary>The built-in tools: the shell tool (off by default) and the output cap.</summary>
    public ToolOptions Tools { get; init; } = new();

    /// <summary>With <see cref="Source"/> <c>nats</c>: the connection, stream, consumer, claimer and event subject.</summary>
    public NatsWorkerOptions Nats { get; init; } = new();

    /// <summary>OpenTelemetry export. Default: off.</summary>
    public TelemetryOptions Telemetry { get; init; } = new();

    /// <summary>
    /// Stop the host once the pipeline ends by itself (the file is read, the NATS source went idle
    /// for <see cref="NatsSourceOptions.IdleTimeout"/>). Default true.
    /// </summary>
    public bool StopHostWhenDone { get; init; } = true;

    /// <summary>
    /// What is added to <see cref="PipelineOptions.ShutdownTimeout"/> + <see cref="PipelineOptions.SettleTimeout"/>
    /// for the host's own shutdown timeout, so the host never abandons a drain the pipeline would
    /// finish. Default 5 s.
    /// </summary>
    public TimeSpan ShutdownMargin { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The least <c>HostOptions.ShutdownTimeout</c> this worker needs: the pipeline's drain, its
    /// last settles, then the margin (flushing events and closing connections).
    /// </summary>
    public TimeSpan RequiredHostShutdownTimeout => Engine.ShutdownTimeout + Engine.SettleTimeout + ShutdownMargin;
}

/// <summary>The source kinds a worker knows.</summary>
public static class SourceKinds
{
    /// <summary>A JetStream durable pull consumer.</summary>
    public const string Nats = "nats";

    /// <summary>A JSON Lines file (the embedded default).</summary>
    public const string File = "file";

    /// <summary>Every kind, as messages list them.</summary>
    public static IReadOnlyList<string> All { get; } = [Nats, File];
}

/// <summary>The built-in tools' settings a worker takes from configuration.</summary>
public sealed record ToolOptions
{
    /// <summary>Register the shell tool (runs programs on this machine). Default false.</summary>
    public bool EnableShell { get; init; }

    /// <summary>Most bytes of output a tool keeps. Default 64 KiB.</summary>
    public int MaxOutputBytes { get; init; } = BuiltInToolOptions.DefaultMaxOutputBytes;

    /// <summary>The built-in tools' options these settings make.</summary>
    internal BuiltInToolOptions ToBuiltIn() => new() { EnableShell = EnableShell, MaxOutputBytes = MaxOutputBytes };
}

/// <summary>A worker on NATS: the connection and the JetStream pieces, each with its own defaults.</summary>
public sealed record NatsWorkerOptions
{
    /// <summary>
    /// The server, credentials and TLS. Required with source <c>nats</c> (null: none configured);
    /// binding any <c>Nats:Connection:*</c> key creates it.
    /// </summary>
    public NatsConnectionOptions? Connection { get; init; }

    /// <summary>The stream, durable consumer and pulling (<see cref="NatsSourceOptions"/> documents each default).</summary>
    public NatsSourceOptions Source { get; init; } = new();

    /// <summary>Claim each command in a KV bucket (create-if-absent on <c>command_id</c>), so a command published twice runs once. Default false.</summary>
    public bool KvClaimer { get; init; }

    /// <summary>The claim bucket, with <see cref="KvClaimer"/>.</summary>
    public NatsKvClaimerOptions Claimer { get; init; } = new();

    /// <summary>The events stream and subject template, with events <c>nats</c>.</summary>
    public NatsEventSinkOptions Events { get; init; } = new();
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

    /// <summary>How often metrics are exported. Default 10 s.</summary>
    public TimeSpan MetricInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Whether anything is exported at all.</summary>
    public bool Enabled => OtlpEndpoint is not null || Console;
}
