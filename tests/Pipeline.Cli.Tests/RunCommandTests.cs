namespace Pipeline.Cli.Tests;

public sealed class RunCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-cli-").FullName;

    private static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "samples", name);

    private static Task<(int Exit, string Out, string Err)> Run(params string[] args) => InProcessCli.RunAsync(args);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task The_sample_runs_green_and_writes_three_events_per_command()
    {
        var events = Path.Combine(_directory, "events.jsonl");
        var (exit, output, error) = await Run("run", Sample("commands.jsonl"), "--events", events);

        Assert.Equal(0, exit);
        Assert.Equal(string.Empty, error);
        TextAssert.ContainsEach(output, "completed      8", "8 pulled = 8 acked + 0 nacked + 0 terminated + 0 settle errors", "p50");

        var lines = await File.ReadAllLinesAsync(events);
        Assert.Equal(24, lines.Length);
        var parsed = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var echo = parsed.Single(e => e.GetProperty("command_id").GetString() == "sample-2" && e.GetProperty("event_type").GetString() == "command.completed");
        Assert.Equal("hello from pipeline", echo.GetProperty("result").GetProperty("message").GetString());
        Assert.Equal("COMPLETED", echo.GetProperty("status").GetString());
        Assert.Equal(1001, echo.GetProperty("execution_id").GetInt64());
    }

    [Fact]
    public async Task Failures_exit_1_and_are_listed()
    {
        var (exit, output, _) = await Run("run", Sample("with-failures.jsonl"));

        Assert.Equal(1, exit);
        TextAssert.ContainsEach(
            output,
            "with-failures.jsonl line 3: malformed command",
            "unknown tool_kind 'teleport'",
            "input.ms must be a non-negative integer",
            "completed      2");
    }

    [Fact]
    public async Task After_dispatch_mode_redelivers_a_failing_command_until_it_gives_up()
    {
        var commands = Path.Combine(_directory, "retry.jsonl");
        await File.WriteAllTextAsync(commands, """{"command_id":"r","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":-1}}""" + "\n");
        var events = Path.Combine(_directory, "retry-events.jsonl");

        var (exit, output, _) = await Run("run", commands, "--ack-mode", "after-dispatch", "--max-attempts", "3", "--events", events);

        Assert.Equal(1, exit);
        // Bad input is not retryable: given up on the first attempt, terminated, not redelivered.
        Assert.Contains("1 pulled = 0 acked + 0 nacked + 1 terminated + 0 settle errors", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_that_fails_once_and_succeeds_on_redelivery_exits_0()
    {
        var marker = Path.Combine(_directory, "ran-once");
        var commands = Path.Combine(_directory, "flaky.jsonl");
        // Fails on its first run (leaving the marker), succeeds on the redelivery.
        var script = JsonSerializer.Serialize($"test -e '{marker}' || {{ touch '{marker}'; exit 1; }}");
        await File.WriteAllTextAsync(commands, $$$"""{"command_id":"flaky","execution_id":1,"step":"s","tool_kind":"shell","input":{"command":"sh","args":["-c",{{{script}}}]}}""" + "\n");

        var (exit, output, _) = await Run("run", commands, "--enable-shell", "--ack-mode", "after-dispatch", "--max-attempts", "3", "--tool-retries", "0");

        Assert.Equal(0, exit);
        TextAssert.ContainsEach(output, "completed      1", "failed         0", "retried        1", "all commands succeeded");
    }

    [Fact]
    public async Task A_missing_file_exits_2()
    {
        var (exit, _, error) = await Run("run", Path.Combine(_directory, "absent.jsonl"));
        Assert.Equal(2, exit);
        Assert.Contains("cannot read", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("run", "x.jsonl", "--ack-mode", "sideways")]
    [InlineData("run", "x.jsonl", "--dispatch-parallelism", "many")]
    [InlineData("walk", "x.jsonl")]
    public async Task Usage_errors_exit_2(params string[] args)
    {
        var (exit, _, error) = await Run(args);
        Assert.Equal(2, exit);
        Assert.StartsWith("error:", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Out_of_range_options_exit_2_naming_the_option()
    {
        var (exit, _, error) = await Run("run", Sample("commands.jsonl"), "--dispatch-parallelism", "0");
        Assert.Equal(2, exit);
        Assert.StartsWith("error: --dispatch-parallelism must be a whole number from 1 to 4096, not '0'." + Environment.NewLine, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_shell_tool_is_unknown_until_enabled()
    {
        var commands = Path.Combine(_directory, "shell.jsonl");
        await File.WriteAllTextAsync(commands, """{"command_id":"sh","execution_id":1,"step":"s","tool_kind":"shell","input":{"command":"true"}}""" + "\n");

        var (disabledExit, disabledOutput, _) = await Run("run", commands);
        Assert.Equal(1, disabledExit);
        Assert.Contains("unknown tool_kind 'shell'", disabledOutput, StringComparison.Ordinal);

        var (enabledExit, _, _) = await Run("run", commands, "--enable-shell");
        Assert.Equal(0, enabledExit);
    }
}
