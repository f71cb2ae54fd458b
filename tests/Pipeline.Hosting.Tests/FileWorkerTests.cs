using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Pipeline.Hosting.Tests;

/// <summary>The hosted worker on the embedded default source (a JSON Lines file), and its OpenTelemetry export through the host.</summary>
public sealed class FileWorkerTests : IDisposable
{
    private static readonly string Samples = Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl");
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-hosting-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static int SampleCount => File.ReadAllLines(Samples).Count(l => l.Trim().Length > 0);

    [Fact]
    public async Task The_worker_runs_the_file_then_stops_the_host_with_its_events_flushed()
    {
        var events = Path.Combine(_directory, "events.jsonl");
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddPipelineWorker(o => o with { CommandsFile = Samples, Events = events });
        using var host = builder.Build();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        // Ends by itself: the file is read, the worker stops the host.
        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(state.Fault);
        Assert.True(state.SourceExhausted);
        var stats = await state.Started;
        Assert.Equal(SampleCount, stats.Completed);
        Assert.Equal(stats.Pulled, stats.Acked);
        var completed = File.ReadAllLines(events).Count(l => JsonDocument.Parse(l).RootElement.GetProperty("event_type").GetString() == "command.completed");
        Assert.Equal(SampleCount, completed);
    }

    [Fact]
    public async Task With_an_endpoint_spans_and_metrics_of_Pipeline_reach_the_exporters_through_the_host()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddPipelineWorker(o => o with
        {
            CommandsFile = Samples,
            // Nothing listens there: the OTLP export fails quietly; the in-memory one below sees what it was given.
            Telemetry = new TelemetryOptions { OtlpEndpoint = new Uri("http://127.0.0.1:9") },
        });
        builder.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans));
        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddInMemoryExporter(metrics));
        using var host = builder.Build();

        await host.StartAsync();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        await state.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        // Collected while the host still lives (the worker's counts are observable instruments).
        host.Services.GetRequiredService<MeterProvider>().ForceFlush();
        host.Services.GetRequiredService<TracerProvider>().ForceFlush();
        await host.StopAsync();

        lock (spans)
        {
            Assert.True(spans.Count(s => s.Source.Name == "Pipeline") >= SampleCount, $"{spans.Count} spans: {string.Join(", ", spans.Select(s => s.Source.Name + "/" + s.DisplayName).Distinct())}");
        }

        Assert.Contains(metrics, m => m.MeterName == "Pipeline");
    }

    [Fact]
    public void Without_an_endpoint_or_the_console_nothing_is_exported()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddPipelineWorker(o => o with { CommandsFile = Samples });
        using var host = builder.Build();
        Assert.Null(host.Services.GetService<TracerProvider>());
        Assert.Null(host.Services.GetService<MeterProvider>());
    }
}
