using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pipeline.Engine;
using Pipeline.Nats.Modules;

namespace Pipeline.Hosting.Tests;

/// <summary>Options bound from configuration as a deployment writes them, and refused at start with a message naming the setting.</summary>
public sealed class PipelineWorkerOptionsTests
{
    private static IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddPipelineWorker();
        builder.Services.AddPipelineNats();
        return builder.Build();
    }

    private static async Task<string> StartFailure(Dictionary<string, string?> settings)
    {
        using var host = Build(settings);
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        // The host failed before running anything: no pipeline was built.
        Assert.False(host.Services.GetRequiredService<PipelineWorkerState>().Started.IsCompletedSuccessfully);
        return ex.Message;
    }

    [Fact]
    public async Task An_unknown_source_kind_fails_the_start_and_lists_the_known_ones()
    {
        var message = await StartFailure(new() { ["Pipeline:Source"] = "kafka" });
        Assert.Contains("Pipeline:Source 'kafka' is not a known source kind; known: nats, file.", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Parallelism_zero_fails_the_start_naming_the_setting()
    {
        var message = await StartFailure(new() { ["Pipeline:CommandsFile"] = "x.jsonl", ["Pipeline:Engine:Dispatch:Parallelism"] = "0" });
        Assert.Contains("Pipeline:Engine:Dispatch.Parallelism must be from 1 to 4096.", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_nats_source_without_a_url_fails_the_start()
    {
        var message = await StartFailure(new() { ["Pipeline:Source"] = "nats" });
        Assert.Contains("Pipeline:Nats:Connection:Url is required with Pipeline:Source 'nats'", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Settings_that_cannot_work_together_are_named()
    {
        var message = await StartFailure(new()
        {
            ["Pipeline:Source"] = "nats",
            ["Pipeline:Nats:Connection:Url"] = "nats://127.0.0.1:1",
            ["Pipeline:Engine:MaxInFlight"] = "5000",
        });
        Assert.Contains("Pipeline:Nats:Source:MaxAckPending (4096) must be at least MaxInFlight (5000) + FetchBatch (128)", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Keys_as_appsettings_environment_variables_and_the_command_line_write_them_bind_to_the_records()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:Source"] = "nats",
            ["Pipeline:Events"] = "nats",
            ["Pipeline:Engine:ShutdownTimeout"] = "00:02:00",
            ["Pipeline:Engine:SinkFailure"] = "Drop",
            ["Pipeline:Engine:AckMode"] = "AckAfterDispatch",
        });
        // PIPELINE__ENGINE__DISPATCH__PARALLELISM: configuration keys are case-insensitive, '__' is ':'.
        Environment.SetEnvironmentVariable("PIPELINE__ENGINE__DISPATCH__PARALLELISM", "64");
        Environment.SetEnvironmentVariable("PIPELINE__NATS__CONNECTION__URL", "nats://127.0.0.1:4333");
        try
        {
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(["--Pipeline:Nats:Source:Stream=orders", "--Pipeline:Nats:KvClaimer=true"]);
            builder.AddPipelineWorker();
            builder.Services.AddPipelineNats();
            using var host = builder.Build();
            var options = host.Services.GetRequiredService<IOptions<PipelineWorkerOptions>>().Value;
            var nats = NatsModule.Bind(builder.Configuration.GetSection("Pipeline:Nats"));

            Assert.Equal("nats", options.Source);
            Assert.Equal(64, options.Engine.Dispatch.Parallelism);
            Assert.Equal(1, options.Engine.Claim.Parallelism);
            Assert.Equal(SinkFailureAction.Drop, options.Engine.SinkFailure);
            Assert.Equal(AckMode.AckAfterDispatch, options.Engine.AckMode);
            Assert.Equal("nats://127.0.0.1:4333", nats.Connection!.Url);
            Assert.Equal("orders", nats.Source.Stream);
            Assert.Equal("pipeline-workers", nats.Source.Consumer);
            Assert.True(nats.KvClaimer);

            // The host waits for the whole drain, the last settles and a margin: 120 + 5 + 5 s.
            Assert.Equal(TimeSpan.FromSeconds(130), host.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PIPELINE__ENGINE__DISPATCH__PARALLELISM", null);
            Environment.SetEnvironmentVariable("PIPELINE__NATS__CONNECTION__URL", null);
        }
    }

    [Fact]
    public void A_list_in_configuration_replaces_the_default_rather_than_adding_to_it()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:CommandsFile"] = "x.jsonl",
            ["Pipeline:Nats:Source:Subjects:0"] = "orders.>",
        }).Build();
        Assert.Equal(["orders.>"], NatsModule.Bind(configuration.GetSection("Pipeline:Nats")).Source.Subjects);
    }

    [Fact]
    public void The_host_shutdown_timeout_is_never_lowered()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMinutes(10));
        builder.Services.AddPipelineWorker(o => o with { CommandsFile = "x.jsonl", Engine = o.Engine with { ShutdownTimeout = TimeSpan.FromSeconds(1) } });
        using var host = builder.Build();
        Assert.Equal(TimeSpan.FromMinutes(10), host.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }
}
