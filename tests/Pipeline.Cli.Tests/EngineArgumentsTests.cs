using System.CommandLine;
using System.Text.RegularExpressions;
using Pipeline.Engine;

namespace Pipeline.Cli.Tests;

/// <summary>The engine knobs <c>run</c> and <c>worker</c> share (<see cref="EngineArguments"/>).</summary>
public sealed class EngineArgumentsTests
{
    private static readonly string[] EngineOptions =
    [
        "--ack-mode", "--pull-parallelism", "--claim-parallelism", "--ack-parallelism", "--dispatch-parallelism", "--emit-parallelism",
        "--max-in-flight", "--emit-batch", "--max-attempts", "--tool-timeout-ms", "--tool-retries", "--shutdown-timeout-ms",
        "--max-output-bytes", "--enable-shell", "--worker-id",
    ];

    private static ParseResult Parse(EngineArguments engine, params string[] args)
    {
        var command = new RootCommand();
        engine.AddTo(command);
        var result = command.Parse(args);
        Assert.Empty(result.Errors);
        return result;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_knob_given_is_read_into_the_engine_options(bool worker)
    {
        var engine = new EngineArguments(worker);
        var result = Parse(
            engine,
            "--ack-mode", "after-dispatch", "--pull-parallelism", "3", "--claim-parallelism", "4", "--ack-parallelism", "5",
            "--dispatch-parallelism", "6", "--emit-parallelism", "7", "--max-in-flight", "800", "--emit-batch", "9",
            "--max-attempts", "10", "--tool-timeout-ms", "1100", "--tool-retries", "0", "--shutdown-timeout-ms", "1300",
            "--max-output-bytes", "1400", "--enable-shell", "--worker-id", "w-15");

        var options = engine.Read(result);

        Assert.Equal(AckMode.AckAfterDispatch, options.AckMode);
        Assert.Equal(3, options.PullParallelism);
        Assert.Equal(4, options.Claim.Parallelism);
        Assert.Equal(5, options.AckDecision.Parallelism);
        Assert.Equal(6, options.Dispatch.Parallelism);
        Assert.Equal(7, options.Emit.Parallelism);
        Assert.Equal(800, options.MaxInFlight);
        Assert.Equal(9, options.EmitBatchSize);
        Assert.Equal(10, options.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(1100), options.ToolTimeout);
        Assert.Equal(0, options.ToolRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(1300), options.ShutdownTimeout);
        Assert.Equal("w-15", options.WorkerId);
        Assert.True(result.GetValue(engine.EnableShell));
        Assert.Equal(1400, result.GetValue(engine.MaxOutput));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Nothing_given_reads_the_documented_defaults(bool worker)
    {
        var engine = new EngineArguments(worker);
        var result = Parse(engine);

        var options = engine.Read(result);

        // The README's table of knobs.
        Assert.Equal(AckMode.AckBeforeDispatch, options.AckMode);
        Assert.Equal(2, options.PullParallelism);
        Assert.Equal(1, options.Claim.Parallelism);
        Assert.Equal(1, options.AckDecision.Parallelism);
        Assert.Equal(16, options.Dispatch.Parallelism);
        Assert.Equal(1, options.Emit.Parallelism);
        Assert.Equal(1024, options.MaxInFlight);
        Assert.Equal(256, options.EmitBatchSize);
        Assert.Equal(5, options.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(30_000), options.ToolTimeout);
        Assert.Equal(2, options.ToolRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(30_000), options.ShutdownTimeout);
        Assert.Equal($"{Environment.MachineName}-{Environment.ProcessId}", options.WorkerId);
        Assert.False(result.GetValue(engine.EnableShell));
        Assert.Equal(65_536, result.GetValue(engine.MaxOutput));
    }

    [Theory]
    [InlineData("run", "--max-line-bytes", "--sink-failure")]
    [InlineData("worker", "--sink-failure", "--max-line-bytes")]
    public async Task Help_lists_each_engine_knob_once_with_the_commands_own_extra(string command, string own, string other)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await PipelineCli.InvokeAsync([command, "--help"], stdout, stderr, interactive: false).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exit);
        var help = stdout.ToString();
        foreach (var option in EngineOptions.Append(own))
        {
            Assert.Single(Regex.Matches(help, $@"^\s+{Regex.Escape(option)}\b", RegexOptions.Multiline));
        }

        Assert.DoesNotContain(other, help, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_keeps_each_commands_own_wording()
    {
        Assert.Equal("Most items the pipeline holds at once (pulls wait for a free slot); at least --pull-parallelism. From 1 to 1048576. Default: 1024.", new EngineArguments(worker: false).MaxInFlight.Description);
        Assert.Equal("Most items the pipeline holds at once; at least --pull-parallelism. From 1 to 1048576. Default: 1024.", new EngineArguments(worker: true).MaxInFlight.Description);
        Assert.Equal("The worker id on events. Default: host name and process id.", new EngineArguments(worker: false).WorkerId.Description);
        Assert.Equal("The worker id on events and claims. Default: host name and process id.", new EngineArguments(worker: true).WorkerId.Description);
    }
}
