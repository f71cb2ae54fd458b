using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Pipeline.Dispatch;
using Pipeline.Modules;
using Pipeline.Telemetry;

namespace Pipeline.Hosting;

/// <summary>Registers the hosted pipeline worker.</summary>
public static class PipelineWorkerServiceCollectionExtensions
{
    /// <summary>
    /// Adds the worker configured by the builder's <c>Pipeline</c> section: appsettings.json,
    /// environment variables (<c>PIPELINE__SOURCE=nats</c>, <c>PIPELINE__NATS__CONNECTION__URL=...</c>)
    /// and the command line (<c>--Pipeline:Source=nats</c>), as the default host builder reads them.
    /// The file source and the stdout and file sinks are built in; a backend is one more line
    /// (<c>builder.Services.AddPipelineNats()</c>), and reads its own section (<c>Pipeline:Nats</c>).
    /// </summary>
    public static IHostApplicationBuilder AddPipelineWorker(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddPipelineWorker(builder.Configuration.GetSection(PipelineWorkerOptions.SectionName));
        return builder;
    }

    /// <summary>Adds the worker with its options bound from <paramref name="configuration"/> (the <c>Pipeline</c> section), validated when the host starts.</summary>
    public static IServiceCollection AddPipelineWorker(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<PipelineWorkerOptions>();
        services.AddSingleton<IOptionsFactory<PipelineWorkerOptions>>(sp => new FixedOptionsFactory(
            () => Bind(configuration), sp.GetServices<IConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IPostConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IValidateOptions<PipelineWorkerOptions>>()));
        services.AddSingleton(new PipelineWorkerSection(configuration));
        // Telemetry is decided at registration (exporters are built with the providers); the
        // rest is bound, and validated, when the host starts.
        var telemetry = configuration.GetSection(nameof(PipelineWorkerOptions.Telemetry)).Get<TelemetryOptions>() ?? new TelemetryOptions();
        return services.AddWorkerCore(telemetry);
    }

    /// <summary>
    /// Adds the worker configured by <paramref name="configuration"/> (the <c>Pipeline</c> section,
    /// which the modules read their own sections from), with <paramref name="configure"/> changing
    /// the worker's own options after they are bound (<c>o => o with { ... }</c>): settings in
    /// code win over the configuration. Validated when the host starts.
    /// </summary>
    public static IServiceCollection AddPipelineWorker(this IServiceCollection services, IConfiguration configuration, Func<PipelineWorkerOptions, PipelineWorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(configure);
        var options = configure(Bind(configuration)) ?? throw new ArgumentException("configure returned null.", nameof(configure));
        services.AddOptions<PipelineWorkerOptions>();
        services.AddSingleton<IOptionsFactory<PipelineWorkerOptions>>(sp => new FixedOptionsFactory(
            () => options, sp.GetServices<IConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IPostConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IValidateOptions<PipelineWorkerOptions>>()));
        services.AddSingleton(new PipelineWorkerSection(configuration));
        return services.AddWorkerCore(options.Telemetry);
    }

    /// <summary>Binds the section's own keys (a module binds its own section when the worker starts).</summary>
    internal static PipelineWorkerOptions Bind(IConfiguration configuration) =>
        configuration.Get<PipelineWorkerOptions>() ?? new PipelineWorkerOptions();

    /// <summary>
    /// Adds the worker with options built in code: <paramref name="configure"/> gets the defaults
    /// and returns the options to use (<c>o => o with { Source = "nats", ... }</c>: the records are
    /// init-only, so they are replaced rather than changed in place). Validated when the host starts.
    /// </summary>
    public static IServiceCollection AddPipelineWorker(this IServiceCollection services, Func<PipelineWorkerOptions, PipelineWorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = configure(new PipelineWorkerOptions()) ?? throw new ArgumentException("configure returned null.", nameof(configure));
        services.AddOptions<PipelineWorkerOptions>();
        services.AddSingleton<IOptionsFactory<PipelineWorkerOptions>>(sp => new FixedOptionsFactory(
            () => options, sp.GetServices<IConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IPostConfigureOptions<PipelineWorkerOptions>>(), sp.GetServices<IValidateOptions<PipelineWorkerOptions>>()));
        services.AddSingleton(new PipelineWorkerSection(null));
        return services.AddWorkerCore(options.Telemetry);
    }

    private static IServiceCollection AddWorkerCore(this IServiceCollection services, TelemetryOptions telemetry)
    {
        services.AddOptions<PipelineWorkerOptions>().ValidateOnStart();
        // The built-in module (the file source, the stdout and file sinks); backends add theirs.
        services.AddPipelineModule(CoreModule.Instance);
        services.TryAddSingleton(sp => new PipelineModules(sp.GetServices<IPipelineModule>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PipelineWorkerOptions>, PipelineWorkerOptionsValidator>(
            sp => new PipelineWorkerOptionsValidator(sp.GetRequiredService<PipelineModules>(), sp.GetRequiredService<PipelineWorkerSection>().Configuration)));
        services.TryAddSingleton<PipelineWorkerState>();
        // The built-in tools as configured (Pipeline:Tools), read when the run builds its tools, after validation.
        services.AddPipelineBuiltInTools(sp => sp.GetRequiredService<IOptions<PipelineWorkerOptions>>().Value.Tools.ToBuiltIn());
        services.AddHostedService<PipelineWorker>();

        // The host waits HostOptions.ShutdownTimeout (30 s by default) for the worker, then walks
        // away; the pipeline may need its whole drain plus the last settles. Raise it, never lower it.
        services.AddOptions<HostOptions>().PostConfigure<IOptions<PipelineWorkerOptions>>((host, worker) =>
        {
            TimeSpan needed;
            try
            {
                needed = worker.Value.RequiredHostShutdownTimeout;
            }
            catch (OptionsValidationException)
            {
                // Invalid options fail the start (ValidateOnStart) with every message; failing
                // here, while the host is built, would hide them behind a resolution error.
                return;
            }

            if (host.ShutdownTimeout < needed)
            {
                host.ShutdownTimeout = needed;
            }
        });

        if (telemetry.Enabled)
        {
            services.AddPipelineTelemetry(telemetry);
        }

        return services;
    }

    /// <summary>
    /// The OpenTelemetry SDK for the pipeline's <c>Pipeline</c> activity source and meter, exported
    /// over OTLP when <see cref="TelemetryOptions.OtlpEndpoint"/> is set and to the console when
    /// <see cref="TelemetryOptions.Console"/> is. Other exporters can be added to the same providers
    /// with <c>services.ConfigureOpenTelemetryTracerProvider</c> / <c>ConfigureOpenTelemetryMeterProvider</c>.
    /// </summary>
    public static IServiceCollection AddPipelineTelemetry(this IServiceCollection services, TelemetryOptions telemetry)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(telemetry);
        var protocol = telemetry.OtlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        void Otlp(OtlpExporterOptions o)
        {
            o.Endpoint = telemetry.OtlpEndpoint!;
            o.Protocol = protocol;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(telemetry.ServiceName))
            .WithTracing(tracing =>
            {
                tracing.AddSource(PipelineTelemetry.Name);
                if (telemetry.OtlpEndpoint is not null)
                {
                    tracing.AddOtlpExporter(Otlp);
                }

                if (telemetry.Console)
                {
                    tracing.AddConsoleExporter();
                }
            })
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(PipelineTelemetry.Name);
                if (telemetry.OtlpEndpoint is not null)
                {
                    metrics.AddOtlpExporter((exporter, reader) =>
                    {
                        Otlp(exporter);
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)telemetry.MetricInterval.TotalMilliseconds;
                    });
                }

                if (telemetry.Console)
                {
                    metrics.AddConsoleExporter((_, reader) =>
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)telemetry.MetricInterval.TotalMilliseconds);
                }
            });
        return services;
    }

    /// <summary>The default factory, starting from the given options instead of <c>new()</c> (init-only records are replaced, not filled in).</summary>
    private sealed class FixedOptionsFactory(
        Func<PipelineWorkerOptions> options,
        IEnumerable<IConfigureOptions<PipelineWorkerOptions>> setups,
        IEnumerable<IPostConfigureOptions<PipelineWorkerOptions>> postConfigures,
        IEnumerable<IValidateOptions<PipelineWorkerOptions>> validations)
        : OptionsFactory<PipelineWorkerOptions>(setups, postConfigures, validations)
    {
        protected override PipelineWorkerOptions CreateInstance(string name) => options();
    }
}

/// <summary>The <c>Pipeline</c> section the worker was configured from, for the modules to read their own sections; null for options built in code.</summary>
internal sealed record PipelineWorkerSection(IConfiguration? Configuration);
