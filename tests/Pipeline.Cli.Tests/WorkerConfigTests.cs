using Pipeline.Engine;
using Pipeline.Hosting;
using Pipeline.Nats.Connection;

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
        var options = await WorkerCommand.ReadSettingsAsync(Sample, stderr);
        Assert.True(options is not null, stderr.ToString());

        // The values the README and docs/nats.md give as defaults.
        Assert.Equal("nats", options.Source);
        Assert.Null(options.Events);
        Assert.Equal(2, options.Engine.PullParallelism);
        Assert.Equal(16, options.Engine.Dispatch.Parallelism);
        Assert.Equal(1024, options.Engine.MaxInFlight);
        Assert.Equal(AckMode.AckBeforeDispatch, options.Engine.AckMode);
        Assert.Equal(SinkFailureAction.Backpressure, options.Engine.SinkFailure);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Engine.ShutdownTimeout);
        Assert.Equal("nats://127.0.0.1:4222", options.Nats.Connection?.Url);
        Assert.Null(options.Nats.Connection?.User);
        Assert.Equal("pipeline_commands", options.Nats.Source.Stream);
        Assert.Equal(["pipeline.commands.>"], options.Nats.Source.Subjects);
        Assert.Equal("pipeline-workers", options.Nats.Source.Consumer);
        Assert.Equal(4096, options.Nats.Source.MaxAckPending);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Nats.Source.AckWait);
        Assert.Equal(20, options.Nats.Source.MaxDeliver);
        Assert.Equal(128, options.Nats.Source.FetchBatch);
        Assert.Null(options.Nats.Source.IdleTimeout);
        Assert.Null(options.Nats.Source.KeepAliveInterval);
        Assert.Equal("pipeline_claims", options.Nats.Claimer.Bucket);
        Assert.Equal(["pipeline.events.>"], options.Nats.Events.Subjects);
        Assert.Null(options.Telemetry.OtlpEndpoint);

        // And nothing in it differs from the defaults in code (a key spelled wrong is ignored by the binder, so compare all).
        var defaults = new PipelineWorkerOptions();
        Assert.Equal(defaults.Engine, options.Engine);
        Assert.Equal(defaults.Tools, options.Tools);
        Assert.Equal(defaults.Telemetry, options.Telemetry);
        Assert.Equal(new NatsConnectionOptions(), options.Nats.Connection);
        Assert.Equal(defaults.Nats.Source with { Subjects = options.Nats.Source.Subjects }, options.Nats.Source);
        Assert.Equal(defaults.Nats.Claimer, options.Nats.Claimer);
        Assert.Equal(defaults.Nats.Events with { Subjects = options.Nats.Events.Subjects }, options.Nats.Events);
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
        Assert.Contains("Dispatch.Parallelism", error, StringComparison.Ordinal);
        Assert.Contains("FetchBatch", error, StringComparison.Ordinal);

        (exit, _, error) = await Run("worker", "--config", settings, "--nats", "nats://127.0.0.1:1", "--dispatch-parallelism", "4");
        Assert.Equal(2, exit);
        Assert.DoesNotContain("Dispatch.Parallelism", error, StringComparison.Ordinal);
        Assert.Contains("FetchBatch", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_connection_may_come_from_the_file_and_without_either_it_is_a_usage_error()
    {
        var bad = Write("""{ "Pipeline": { "Nats": { "Connection": { "Url": "http://not-nats" } } } }""");
        var (exit, _, error) = await Run("worker", "--config", bad);
        Assert.Equal(2, exit);
        Assert.Contains("Url", error, StringComparison.Ordinal);

        (exit, _, error) = await Run("worker");
        Assert.Equal(2, exit);
        Assert.Contains("--nats is required", error, StringComparison.Ordinal);
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
