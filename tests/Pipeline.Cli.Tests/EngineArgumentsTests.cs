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

    /// <summary>Every knob as read, compared whole: a failure shows each value that differs.</summary>
    private sealed record Knobs(
        AckMode AckMode, int Pull, int Claim, int AckDecision, int Dispatch, int Emit, int MaxInFlight, int EmitBatch, int MaxAttempts,
        TimeSpan ToolTimeout, int ToolRetries, TimeSpan ShutdownTimeout, string WorkerId, bool EnableShell, int MaxOutput)
    {
        public static Knobs Read(EngineArguments engine, ParseResult result)
        {
            var o = engine.Read(result);
            return new Knobs(
                o.AckMode, o.PullParallelism, o.Claim.Parallelism, o.AckDecision.Parallelism, o.Dispatch.Parallelism, o.Emit.Parallelism, o.MaxInFlight,
                o.EmitBatchSize, o.MaxAttempts, o.ToolTimeout, o.ToolRetries, o.ShutdownTimeout, o.WorkerId, result.GetValue(engine.EnableShell), result.GetValue(engine.MaxOutput));
        }
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

        var expected = new Knobs(
            AckMode.AckAfterDispatch, Pull: 3, Claim: 4, AckDecision: 5, Dispatch: 6, Emit: 7, MaxInFlight: 800, EmitBatch: 9, MaxAttempts: 10,
            ToolTimeout: TimeSpan.FromMilliseconds(1100), ToolRetries: 0, ShutdownTimeout: TimeSpan.FromMilliseconds(1300), "w-15", EnableShell: true, MaxOutput: 1400);
        Assert.Equal(expected, Knobs.Read(engine, result));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Nothing_given_reads_the_documented_defaults(bool worker)
    {
        var engine = new EngineArguments(worker);
        var result = Parse(engine);

        // The README's table of knobs.
        var expected = new Knobs(
            AckMode.AckBeforeDispatch, Pull: 2, Claim: 1, AckDecision: 1, Dispatch: 16, Emit: 1, MaxInFlight: 1024, EmitBatch: 256, MaxAttempts: 5,
            ToolTimeout: TimeSpan.FromMilliseconds(30_000), ToolRetries: 2, ShutdownTimeout: TimeSpan.FromMilliseconds(30_000),
            $"{Environment.MachineName}-{Environment.ProcessId}", EnableShell: false, MaxOutput: 65_536);
        Assert.Equal(expected, Knobs.Read(engine, result));
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
