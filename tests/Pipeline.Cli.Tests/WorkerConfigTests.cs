using Microsoft.Extensions.Configuration;
using Pipeline.Engine;
using Pipeline.Hosting;
using Pipeline.Modules;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Modules;

namespace Pipeline.Cli.Tests;

/// <summary><c>pipeline worker --config FILE</c> and the sample settings file.</summary>
public sealed class WorkerConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Sample => Path.Combine(AppContext.BaseDirectory, "samples", "appsettings.json");

    private static async Task<(int Exit, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await PipelineCli.InvokeAsync(args, stdout, stderr, interactive: false).WaitAsync(TimeSpan.FromSeconds(60));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private string Write(string json)
    {
        var path = Path.Combine(_directory, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public async Task The_sample_lists_the_documented_defaults()
    {
        using var stderr = new StringWriter();
        var section = await WorkerCommand.ReadSettingsAsync(Sample, stderr);
        Assert.True(section is not null, stderr.ToString());
        // Bound as the worker binds it (the configuration binder knows no "before-dispatch").
        var bindErrors = new List<string>();
        var options = SettingsBinder.Bind<PipelineWorkerOptions>(section, "Pipeline", bindErrors);
        Assert.Empty(bindErrors);
        var nats = NatsModule.Bind(section.GetSection(NatsModule.SectionName));

        // The values the README and docs/nats.md give as defaults.
        // The default source (pipeline worker takes its source from its flag, whatever the file says).
        Assert.Equal("file", options.Source);
        Assert.Null(options.Events);
        Assert.Equal(2, options.Engine.PullParallelism);
        Assert.Equal(16, options.Engine.Dispatch.Parallelism);
        Assert.Equal(1024, options.Engine.MaxInFlight);
        Assert.Equal(AckMode.AckBeforeDispatch, options.Engine.AckMode);
        Assert.Equal(SinkFailureAction.Backpressure, options.Engine.SinkFailure);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Engine.ShutdownTimeout);
        Assert.Equal("nats://127.0.0.1:4222", nats.Connection?.Url);
        Assert.Null(nats.Connection?.User);
        Assert.Equal("pipeline_commands", nats.Source.Stream);
        Assert.Equal(["pipeline.commands.>"], nats.Source.Subjects);
        Assert.Equal("pipeline-workers", nats.Source.Consumer);
        Assert.Equal(4096, nats.Source.MaxAckPending);
        Assert.Equal(TimeSpan.FromSeconds(30), nats.Source.AckWait);
        Assert.Equal(20, nats.Source.MaxDeliver);
        Assert.Equal(128, nats.Source.FetchBatch);
        Assert.Null(nats.Source.IdleTimeout);
        Assert.Null(nats.Source.KeepAliveInterval);
        Assert.Equal("pipeline_claims", nats.Claimer.Bucket);
        Assert.Equal(["pipeline.events.>"], nats.Events.Subjects);
        Assert.Null(options.Telemetry.OtlpEndpoint);

        // And nothing in it differs from the defaults in code (a key spelled wrong is ignored by the binder, so compare all).
        var defaults = new PipelineWorkerOptions();
        var natsDefaults = new NatsWorkerOptions();
        Assert.Equal(defaults.Engine, options.Engine);
        Assert.Equal(defaults.Tools, options.Tools);
        Assert.Equal(defaults.Telemetry, options.Telemetry);
        Assert.Equal(new NatsConnectionOptions(), nats.Connection);
        Assert.Equal(natsDefaults.Source with { Subjects = nats.Source.Subjects }, nats.Source);
        Assert.Equal(natsDefaults.Claimer, nats.Claimer);
        Assert.Equal(natsDefaults.Events with { Subjects = nats.Events.Subjects }, nats.Events);
        Assert.Equal((defaults.StopHostWhenDone, defaults.ShutdownMargin), (options.StopHostWhenDone, options.ShutdownMargin));
    }

    [Fact]
    public async Task A_setting_in_the_file_is_used_and_a_flag_given_wins_over_it()
    {
        var settings = Write("""
            { "Pipeline": { "Engine": { "Dispatch": { "Parallelism": 0 } }, "Nats": { "Source": { "FetchBatch": 20000 } } } }
            """);

        var (exit, _, error) = await Run("worker", "--config", settings, "--nats", "nats://127.0.0.1:1");
        Assert.Equal(2, exit);
        Assert.Contains("Pipeline:Engine:Dispatch:Parallelism", error, StringComparison.Ordinal);
        Assert.Contains("FetchBatch", error, StringComparison.Ordinal);

        (exit, _, error) = await Run("worker", "--config", settings, "--nats", "nats://127.0.0.1:1", "--dispatch-parallelism", "4");
        Assert.Equal(2, exit);
        Assert.DoesNotContain("Dispatch:Parallelism", error, StringComparison.Ordinal);
        Assert.Contains("FetchBatch", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_whose_source_is_nats_chooses_it_without_the_flag_and_its_connection_is_checked()
    {
        var bad = Write("""{ "Pipeline": { "Source": "nats", "Nats": { "Connection": { "Url": "http://not-nats" } } } }""");
        var (exit, _, error) = await Run("worker", "--config", bad);
        Assert.Equal(2, exit);
        Assert.Contains("Pipeline:Nats:Connection:Url", error, StringComparison.Ordinal);

        var none = Write("""{ "Pipeline": { "Source": "nats" } }""");
        (exit, _, error) = await Run("worker", "--config", none);
        Assert.Equal(2, exit);
        Assert.Contains("Pipeline:Nats:Connection:Url is required with Pipeline:Source 'nats'", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_whose_source_no_worker_flag_offers_runs_the_default_sqlite_file()
    {
        // The hosted worker's file source is not one 'pipeline worker' runs: the embedded default is, here with its file named.
        var database = Path.Combine(_directory, "from-file.db");
        var file = Write($$"""{ "Pipeline": { "Source": "file", "Sqlite": { "Store": { "Path": "{{database}}" } }, "Engine": { "Dispatch": { "Parallelism": 0 } } } }""");

        var (exit, _, error) = await Run("worker", "--config", file);

        Assert.Equal(2, exit);
        Assert.Contains("Pipeline:Engine:Dispatch:Parallelism", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Nats", error, StringComparison.Ordinal);
        Assert.False(File.Exists(database)); // checked before anything is opened
    }

    [Fact]
    public async Task A_missing_or_malformed_file_is_a_usage_error_naming_it()
    {
        var missing = Path.Combine(_directory, "absent.json");
        var (exit, _, error) = await Run("worker", "--config", missing, "--nats", "nats://127.0.0.1:1");
        Assert.Equal(2, exit);
        Assert.Contains($"--config '{missing}' does not exist", error, StringComparison.Ordinal);

        var broken = Write("{ \"Pipeline\": ");
        (exit, _, error) = await Run("worker", "--config", broken, "--nats", "nats://127.0.0.1:1");
        Assert.Equal(2, exit);
        Assert.Contains($"--config '{broken}' cannot be read", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("directory", "is a directory, not a file.")]
    [InlineData("/dev/zero", "is not a regular file (a device, a FIFO or a socket).")]
    public async Task A_settings_file_that_is_a_directory_or_an_endless_device_is_refused_unread(string which, string problem)
    {
        // /dev/zero was read without end (4 GB in 35 s, a SIGTERM not honoured); a directory was said not to exist.
        var path = which == "directory" ? _directory : which;

        var (exit, _, error) = await Run("worker", "--config", path, "--nats", "nats://127.0.0.1:1").WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, exit);
        Assert.Contains($"error: --config '{path}' {problem}", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exit_when_drained_without_exit_when_idle_or_shorter_than_it_is_a_usage_error()
    {
        var (exit, _, error) = await Run("worker", "--nats", "nats://127.0.0.1:1", "--exit-when-drained", "30");
        Assert.Equal(2, exit);
        Assert.Contains("--exit-when-drained needs --exit-when-idle", error, StringComparison.Ordinal);

        (exit, _, error) = await Run("worker", "--nats", "nats://127.0.0.1:1", "--exit-when-idle", "10", "--exit-when-drained", "5");
        Assert.Equal(2, exit);
        Assert.Contains("at least as long", error, StringComparison.Ordinal);
    }
}
