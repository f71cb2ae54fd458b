namespace Pipeline.Tests.Tools;

public sealed class ShellToolTests
{
    private static async Task<ToolResult> Invoke(object input, CancellationToken cancellationToken = default) =>
        await new ShellTool().InvokeAsync(TestCommands.Make("s", "shell", JsonSerializer.Serialize(input)), cancellationToken);

    [Fact]
    public async Task Exit_code_0_is_a_success_with_the_output()
    {
        var result = await Invoke(new { command = "/bin/sh", args = new[] { "-c", "printf out; printf err >&2" } });

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(0, result.Value.GetProperty("exit_code").GetInt32());
        Assert.Equal("out", result.Value.GetProperty("stdout").GetString());
        Assert.Equal("err", result.Value.GetProperty("stderr").GetString());
    }

    [Fact]
    public async Task Arguments_are_passed_as_given_without_shell_interpretation()
    {
        var result = await Invoke(new { command = "/bin/echo", args = new[] { "a b", "$HOME", "*" } });

        Assert.Equal("a b $HOME *\n", result.Value.GetProperty("stdout").GetString());
    }

    [Fact]
    public async Task Env_and_cwd_reach_the_process()
    {
        var dir = Directory.CreateTempSubdirectory("pipeline-shell-").FullName;
        try
        {
            var result = await Invoke(new
            {
                command = "/bin/sh",
                args = new[] { "-c", "printf '%s|%s' \"$PIPELINE_TEST\" \"$(pwd)\"" },
                cwd = dir,
                env = new Dictionary<string, string> { ["PIPELINE_TEST"] = "value" },
            });

            Assert.Equal($"value|{dir}", result.Value.GetProperty("stdout").GetString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_non_zero_exit_code_is_a_permanent_failure_naming_the_code_and_first_stderr_line()
    {
        var result = await Invoke(new { command = "/bin/sh", args = new[] { "-c", "echo partial; echo 'bad thing' >&2; echo more >&2; exit 3" } });

        Assert.False(result.IsSuccess);
        Assert.False(result.IsTransient);
        Assert.Equal("shell: '/bin/sh' exited with code 3: bad thing.", result.Error);
        Assert.Equal(3, result.Value.GetProperty("exit_code").GetInt32());
        Assert.Equal("partial\n", result.Value.GetProperty("stdout").GetString());
    }

    [Fact]
    public async Task A_process_over_timeout_ms_is_killed_and_reported_as_a_transient_timeout()
    {
        var result = await Invoke(new { command = "/bin/sleep", args = new[] { "30" }, timeout_ms = 200 });

        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Equal("shell: '/bin/sleep' timed out after 200 ms and was killed.", result.Error);
    }

    [Fact]
    public async Task Cancellation_kills_the_process_and_surfaces_as_cancellation()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Invoke(new { command = "/bin/sleep", args = new[] { "30" } }, cts.Token));
    }

    [Fact]
    public async Task A_program_that_cannot_start_is_a_failure_naming_it()
    {
        var result = await Invoke(new { command = "/nonexistent/program" });

        Assert.False(result.IsSuccess);
        Assert.StartsWith("shell: cannot start '/nonexistent/program'", result.Error);
    }

    [Theory]
    [InlineData("""{}""", "shell: input.command is required.")]
    [InlineData("""{"command": "/bin/true", "args": "x"}""", "shell: input.args must be an array of strings")]
    [InlineData("""{"command": "/bin/true", "timeout_ms": -1}""", "shell: input.timeout_ms must be a non-negative integer")]
    public async Task Bad_input_is_a_ToolInputException(string input, string expected)
    {
        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await new ShellTool().InvokeAsync(TestCommands.Make("s", "shell", input), default));

        Assert.StartsWith(expected, ex.Message);
    }
}
