using Pipeline.Hosting.Tests.Support;

namespace Pipeline.Hosting.Tests;

/// <summary>
/// The README's hosting snippet (<c>Host.CreateApplicationBuilder(args)</c>, <c>AddPipelineWorker()</c>,
/// <c>Build().Run()</c>) as a real process: its exit code follows the run's outcome as
/// <c>pipeline</c>'s does, and settings that cannot work are one error line and exit 2, never a
/// stack trace, before any file is touched.
/// </summary>
public sealed class HostedWorkerProcessTests : IDisposable
{
    private static readonly string Samples = Path.Combine(AppContext.BaseDirectory, "samples");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-hosted-process-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static void AssertNoStackTrace(string output)
    {
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception:", output, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"(?m)^\s+at \S+\(", output);
    }

    /// <summary>Waits for the first <c>command.started</c> event: a tool is running.</summary>
    private static async Task WaitForAToolToStartAsync(string events, HostedWorkerProcess worker)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!(File.Exists(events) && (await File.ReadAllTextAsync(events)).Contains("\"command.started\"", StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < Timeout, $"no tool started:\n{worker.Output}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Three_bad_settings_are_named_in_one_error_line_with_exit_code_2_and_no_stack_trace()
    {
        using var worker = HostedWorkerProcess.Start(_directory, [
            $"--Pipeline:CommandsFile={Path.Combine(Samples, "commands.jsonl")}",
            "--Pipeline:Engine:Dispatch:Parallelism=0",
            "--Pipeline:Engine:AckMode=sideways",
            "--Pipeline:Tools:MaxOutputBytes=0",
        ]);

        var exit = await worker.WaitForExitAsync(Timeout);

        var output = worker.Output;
        Assert.True(exit == 2, $"exit {exit}\n{output}");
        AssertNoStackTrace(output);
        // The console logger writes a header line ("fail: Pipeline.Hosting[2010]") and the message under it: one message, every key.
        var failures = output.Split('\n').Select((line, i) => (line, i)).Where(l => l.line.StartsWith("fail:", StringComparison.Ordinal)).ToList();
        var failure = Assert.Single(failures);
        Assert.Contains("Pipeline.Hosting", failure.line, StringComparison.Ordinal);
        var message = output.Split('\n')[failure.i + 1];
        TextAssert.ContainsEach(
            message,
            "Pipeline:Engine:Dispatch:Parallelism must be from 1 to 4096 (it is 0).",
            "Pipeline:Engine:AckMode 'sideways' is not one of before-dispatch, after-dispatch, AckBeforeDispatch or AckAfterDispatch",
            "Pipeline:Tools:MaxOutputBytes must be from 1 to 16777216 (it is 0).");
        Assert.DoesNotContain("Dispatch.Parallelism", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_commands_file_fails_before_the_events_file_is_touched()
    {
        var events = Path.Combine(_directory, "events.jsonl");
        byte[] before = [.. "{\"event_type\":\"command.completed\",\"from\":\"the last run\"}\n"u8];
        await File.WriteAllBytesAsync(events, before);
        var written = File.GetLastWriteTimeUtc(events);

        using var worker = HostedWorkerProcess.Start(_directory, ["--Pipeline:CommandsFile=missing.jsonl", $"--Pipeline:Events={events}"]);
        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 2, $"exit {exit}\n{worker.Output}");
        Assert.Contains("Pipeline:CommandsFile 'missing.jsonl' does not exist.", worker.Output, StringComparison.Ordinal);
        AssertNoStackTrace(worker.Output);
        Assert.Equal(before, await File.ReadAllBytesAsync(events));
        Assert.Equal(written, File.GetLastWriteTimeUtc(events));
    }

    [Fact]
    public async Task Commands_that_failed_make_the_process_exit_1()
    {
        using var worker = HostedWorkerProcess.Start(_directory, [$"--Pipeline:CommandsFile={Path.Combine(Samples, "with-failures.jsonl")}"]);

        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 1, $"exit {exit}\n{worker.Output}");
        AssertNoStackTrace(worker.Output);
    }

    [Fact]
    public async Task Every_command_done_exits_0_with_the_command_line_spellings_of_enums_in_configuration()
    {
        // after-dispatch and drop as --ack-mode and --sink-failure spell them, from the environment.
        using var worker = HostedWorkerProcess.Start(
            _directory,
            [$"--Pipeline:CommandsFile={Path.Combine(Samples, "commands.jsonl")}", "--Pipeline:Events=events.jsonl"],
            new Dictionary<string, string> { ["PIPELINE__ENGINE__ACKMODE"] = "after-dispatch", ["PIPELINE__ENGINE__SINKFAILURE"] = "drop" });

        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 0, $"exit {exit}\n{worker.Output}");
        var samples = File.ReadAllLines(Path.Combine(Samples, "commands.jsonl")).Count(l => l.Trim().Length > 0);
        Assert.Equal(samples, File.ReadAllLines(Path.Combine(_directory, "events.jsonl")).Count(l => l.Contains("\"command.completed\"", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task An_unknown_key_is_one_warning_naming_it_and_the_run_goes_on()
    {
        using var worker = HostedWorkerProcess.Start(_directory, [
            $"--Pipeline:CommandsFile={Path.Combine(Samples, "commands.jsonl")}",
            "--Pipeline:Engine:Dispach:Parallelism=4",
            "--Pipeline:Colour=blue",
        ]);

        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 0, $"exit {exit}\n{worker.Output}");
        var lines = worker.Output.Split('\n');
        var warning = Assert.Single(lines.Select((line, i) => (line, i)), l => l.line.StartsWith("warn:", StringComparison.Ordinal));
        var message = lines[warning.i + 1];
        Assert.Contains("Pipeline:Engine:Dispach (did you mean Pipeline:Engine:Dispatch?)", message, StringComparison.Ordinal);
        Assert.Contains("Pipeline:Colour", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sigterm_whose_shutdown_timeout_cuts_a_tool_off_exits_143()
    {
        var commands = Path.Combine(_directory, "slow.jsonl");
        await File.WriteAllTextAsync(commands, """{"command_id": "slow", "execution_id": 1, "step": "s", "tool_kind": "delay", "input": {"ms": 60000}}""" + "\n");
        var events = Path.Combine(_directory, "events.jsonl");
        using var worker = HostedWorkerProcess.Start(_directory, [$"--Pipeline:CommandsFile={commands}", $"--Pipeline:Events={events}", "--Pipeline:Engine:ShutdownTimeout=00:00:00.200"]);
        // The tool has started (a stop before it would hand the command back, cutting nothing off).
        await WaitForAToolToStartAsync(events, worker);

        worker.Signal(HostedWorkerProcess.SigTerm);
        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 128 + HostedWorkerProcess.SigTerm, $"exit {exit}\n{worker.Output}");
        AssertNoStackTrace(worker.Output);
    }

    [Theory]
    [InlineData("Pipeline:Engine:ShutdownTimeout")]
    [InlineData("Pipeline:Engine:SettleTimeout")]
    [InlineData("Pipeline:Engine:ToolTimeout")]
    [InlineData("Pipeline:ShutdownMargin")]
    public async Task A_duration_longer_than_a_timer_can_wait_is_named_in_the_error_line_with_exit_code_2_not_a_crash_at_stop(string key)
    {
        // 50 days: more than the 2^32-2 ms (about 49.7 days) a .NET timer or CancelAfter accepts.
        using var worker = HostedWorkerProcess.Start(_directory, [$"--Pipeline:CommandsFile={Path.Combine(Samples, "commands.jsonl")}", $"--{key}=50.00:00:00"]);

        var exit = await worker.WaitForExitAsync(Timeout);

        Assert.True(exit == 2, $"exit {exit}\n{worker.Output}");
        Assert.Contains(key, worker.Output, StringComparison.Ordinal);
        AssertNoStackTrace(worker.Output);
    }

    [Fact]
    public async Task A_sigterm_that_hands_back_commands_of_the_file_exits_143_since_nothing_will_run_them()
    {
        // 40 commands of 2 s, two at a time: a SIGTERM once the first has started hands back at least 30,
        // which the file source never delivers again; as `pipeline run` does, the exit says the work was not all done.
        var commands = Path.Combine(_directory, "slow.jsonl");
        await File.WriteAllLinesAsync(commands, Enumerable.Range(0, 40).Select(i =>
            $$$"""{"command_id": "slow-{{{i}}}", "execution_id": 1, "step": "s", "tool_kind": "delay", "input": {"ms": 2000}}"""));
        var events = Path.Combine(_directory, "events.jsonl");
        using var worker = HostedWorkerProcess.Start(_directory, [$"--Pipeline:CommandsFile={commands}", $"--Pipeline:Events={events}", "--Pipeline:Engine:Dispatch:Parallelism=2"]);
        await WaitForAToolToStartAsync(events, worker);

        worker.Signal(HostedWorkerProcess.SigTerm);
        var exit = await worker.WaitForExitAsync(Timeout);

        var completed = File.ReadAllLines(events).Count(l => l.Contains("\"command.completed\"", StringComparison.Ordinal));
        Assert.True(completed < 40, $"every command completed before the stop; nothing was tested\n{worker.Output}");
        Assert.True(exit == 128 + HostedWorkerProcess.SigTerm, $"exit {exit} with {completed} of 40 completed\n{worker.Output}");
        AssertNoStackTrace(worker.Output);
    }
}
