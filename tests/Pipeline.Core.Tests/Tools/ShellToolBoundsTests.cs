namespace Pipeline.Tests.Tools;

/// <summary>The shell tool's bounds: capped output, a timeout over the whole run, and the process group killed.</summary>
public sealed class ShellToolBoundsTests
{
    private const int Cap = BuiltInToolOptions.DefaultMaxOutputBytes;

    // Generous on a loaded 2-core machine; what matters is seconds, not the 40 s a leftover child would hold the run.
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(3);

    private static async Task<ToolResult> Invoke(object input, ShellTool? tool = null, CancellationToken cancellationToken = default) =>
        await (tool ?? new ShellTool()).InvokeAsync(TestCommands.Make("s", "shell", JsonSerializer.Serialize(input)), cancellationToken);

    private static Task<ToolResult> Sh(string script, int? maxOutputBytes = null) =>
        Invoke(new Dictionary<string, object?>
        {
            ["command"] = "sh",
            ["args"] = new[] { "-c", script },
            ["max_output_bytes"] = maxOutputBytes,
        });

    [Fact]
    public void The_setsid_the_tool_relies_on_is_here()
    {
        // The group tests below would pass vacuously through the fallback if it were not.
        Assert.True(OperatingSystem.IsLinux());
        Assert.NotNull(ProcessGroup.SetsidPath);
    }

    [Fact]
    public async Task The_process_leads_its_own_session_and_group()
    {
        var result = await Invoke(new { command = "sh", args = new[] { "-c", "echo $$ $(ps -o pgid= -p $$) $(ps -o sid= -p $$)" } });

        Assert.True(result.IsSuccess, result.Error);
        var ids = result.Value.GetProperty("stdout").GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, ids.Length);
        Assert.Equal(ids[0], ids[1]);
        Assert.Equal(ids[0], ids[2]);
        Assert.NotEqual(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), ids[1]);
    }

    [Fact]
    public async Task A_megabyte_of_output_keeps_the_cap_counts_every_byte_and_says_truncated()
    {
        var result = await Sh("head -c 1048576 /dev/zero | tr '\\0' a; printf err >&2");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(new Output(new string('a', Cap), "err", Truncated: true, StdoutBytes: 1_048_576, StderrBytes: 3), Output.Of(result));
    }

    [Fact]
    public async Task Output_within_the_cap_is_whole_and_not_truncated()
    {
        var result = await Sh("printf out; printf err >&2");

        Assert.Equal(new Output("out", "err", Truncated: false, StdoutBytes: 3, StderrBytes: 3), Output.Of(result));
    }

    [Fact]
    public async Task A_per_command_cap_lowers_the_run_cap_for_either_stream()
    {
        var result = await Sh("printf 0123456789; printf abcdefghij >&2", maxOutputBytes: 4);

        Assert.Equal(new Output("0123", "abcd", Truncated: true, StdoutBytes: 10, StderrBytes: 10), Output.Of(result));
    }

    [Fact]
    public async Task A_multi_byte_character_cut_at_the_cap_is_dropped_not_garbled()
    {
        // 'a' then 'é' (C3 A9): a cap of 2 keeps 'a' and half of 'é'.
        var result = await Sh("printf 'a\\303\\251b'", maxOutputBytes: 2);

        Assert.Equal(new Output("a", "", Truncated: true, StdoutBytes: 4, StderrBytes: 0), Output.Of(result));
    }

    [Fact]
    public async Task Yes_under_a_timeout_is_a_timeout_failure_with_exactly_the_cap_kept()
    {
        var clock = Stopwatch.StartNew();
        var result = await Invoke(new { command = "yes", timeout_ms = 1000 });

        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Equal("shell: 'yes' timed out after 1000 ms and was killed.", result.Error);
        Assert.Equal(Cap, result.Value.GetProperty("stdout").GetString()!.Length);
        Assert.True(result.Value.GetProperty("truncated").GetBoolean());
        Assert.True(result.Value.GetProperty("stdout_bytes").GetInt64() > Cap);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1) + Slack, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_background_child_holding_stdout_makes_a_timeout_not_a_success_and_is_killed()
    {
        var marker = MarkedProcesses.SleepMarker(40);
        var clock = Stopwatch.StartNew();

        var result = await Invoke(new { command = "sh", args = new[] { "-c", $"sleep {marker} & echo started" }, timeout_ms = 500 });

        Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(500) + Slack, $"took {clock.Elapsed}");
        Assert.False(result.IsSuccess);
        Assert.True(result.IsTransient);
        Assert.Equal("shell: 'sh' timed out after 500 ms and was killed.", result.Error);
        Assert.Equal("started\n", result.Value.GetProperty("stdout").GetString());
        await MarkedProcesses.AssertGone(marker, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task A_double_forked_child_holding_stdout_dies_with_the_group()
    {
        var marker = MarkedProcesses.SleepMarker(41);

        var result = await Invoke(new { command = "sh", args = new[] { "-c", $"(sh -c 'sleep {marker} &' &) ; echo x" }, timeout_ms = 1000 });

        Assert.Equal("shell: 'sh' timed out after 1000 ms and was killed.", result.Error);
        await MarkedProcesses.AssertGone(marker, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task A_double_forked_child_that_let_go_of_the_output_is_killed_when_the_command_ends()
    {
        var marker = MarkedProcesses.SleepMarker(42);
        var clock = Stopwatch.StartNew();

        var result = await Invoke(new { command = "sh", args = new[] { "-c", $"(sh -c 'sleep {marker} >/dev/null 2>&1 &' &) ; echo x" }, timeout_ms = 30_000 });

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal("x\n", result.Value.GetProperty("stdout").GetString());
        Assert.True(clock.Elapsed < Slack, $"took {clock.Elapsed}");
        await MarkedProcesses.AssertGone(marker, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task A_child_in_a_session_of_its_own_cannot_hold_the_run_past_its_timeout()
    {
        // It escapes the group (the documented limit), but reading stops at the timeout all the same.
        var marker = MarkedProcesses.SleepMarker(43);
        var clock = Stopwatch.StartNew();
        try
        {
            var result = await Invoke(new { command = "sh", args = new[] { "-c", $"setsid sleep {marker} & echo started" }, timeout_ms = 500 });

            Assert.Equal("shell: 'sh' timed out after 500 ms and was killed.", result.Error);
            Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(500) + Slack, $"took {clock.Elapsed}");
        }
        finally
        {
            MarkedProcesses.KillAll(MarkedProcesses.Find(marker));
        }
    }

    [Fact]
    public async Task Cancellation_kills_the_whole_group_and_surfaces_as_cancellation()
    {
        var marker = MarkedProcesses.SleepMarker(44);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Invoke(new { command = "sh", args = new[] { "-c", $"(sleep {marker} >/dev/null &) ; sleep 30" } }, cancellationToken: cts.Token));

        await MarkedProcesses.AssertGone(marker, TimeSpan.FromSeconds(2));
    }

    [Theory]
    [InlineData("no-such-program-4711", "shell: cannot start 'no-such-program-4711': No such file or directory.")]
    [InlineData("/nonexistent/program", "shell: cannot start '/nonexistent/program': No such file or directory.")]
    [InlineData("/tmp", "shell: cannot start '/tmp': it is a directory.")]
    public async Task A_program_that_cannot_start_is_a_permanent_failure_naming_it(string program, string expected)
    {
        var result = await Invoke(new { command = program });

        Assert.False(result.IsSuccess);
        Assert.False(result.IsTransient);
        Assert.Equal(expected, result.Error);
    }

    [Fact]
    public async Task A_file_that_is_not_executable_cannot_start()
    {
        var file = Path.GetTempFileName();
        try
        {
            var result = await Invoke(new { command = file });

            Assert.False(result.IsSuccess);
            Assert.Equal($"shell: cannot start '{file}': Permission denied.", result.Error);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_missing_working_directory_cannot_start()
    {
        var result = await Invoke(new { command = "sh", cwd = "/nonexistent/dir" });

        Assert.Equal("shell: cannot start 'sh': the working directory '/nonexistent/dir' does not exist.", result.Error);
    }

    [Fact]
    public async Task Without_setsid_the_tool_still_runs_caps_and_times_out()
    {
        var tool = new ShellTool(16, setsidPath: null);

        var ok = await Invoke(new { command = "sh", args = new[] { "-c", "printf 0123456789abcdefXYZ" } }, tool);
        var missing = await Invoke(new { command = "no-such-program-4711" }, tool);
        var slow = await Invoke(new { command = "sleep", args = new[] { "30" }, timeout_ms = 200 }, tool);

        Assert.Equal("0123456789abcdef", ok.Value.GetProperty("stdout").GetString());
        Assert.True(ok.Value.GetProperty("truncated").GetBoolean());
        Assert.StartsWith("shell: cannot start 'no-such-program-4711'", missing.Error);
        Assert.Equal("shell: 'sleep' timed out after 200 ms and was killed.", slow.Error);
    }

    [Theory]
    [InlineData("""{"command": "sh", "max_output_bytes": 65537}""", "shell: input.max_output_bytes is 65537, above this run's output limit of 65536 bytes.")]
    [InlineData("""{"command": "sh", "max_output_bytes": 0}""", "shell: input.max_output_bytes must be a positive integer, not 0.")]
    [InlineData("""{"command": "sh", "max_output_bytes": "big"}""", "shell: input.max_output_bytes must be a positive integer, not \"big\".")]
    [InlineData("""{"command": "sh", "timeout_ms": 1000000000000}""", "shell: input.timeout_ms must be at most 2147483647 ms (about 24.8 days), not 1000000000000.")]
    [InlineData("""{"command": "sh", "timeout_ms": 1e30}""", "shell: input.timeout_ms must be at most 2147483647 ms (about 24.8 days), not 1e30.")]
    [InlineData("""{"command": "sh", "timeout_ms": 2.5}""", "shell: input.timeout_ms must be a non-negative integer, not 2.5.")]
    [InlineData("""{"command": "sh", "timeout_ms": "500"}""", "shell: input.timeout_ms must be a non-negative integer, not \"500\".")]
    [InlineData("""{"command": 5}""", "shell: input.command must be a string, not number.")]
    [InlineData("""{"command": "sh", "cwd": []}""", "shell: input.cwd must be a string, not array.")]
    [InlineData("""{"command": "sh", "args": [1]}""", "shell: input.args must contain only strings, not number.")]
    [InlineData("""{"command": "sh", "env": {"A": 1}}""", "shell: input.env.A must be a string, not number.")]
    [InlineData("""{"command": "sh", "env": "A=1"}""", "shell: input.env must be an object of strings, not string.")]
    public async Task Bad_input_is_a_ToolInputException_with_a_clear_message(string input, string expected)
    {
        var ex = await Assert.ThrowsAsync<ToolInputException>(async () => await new ShellTool().InvokeAsync(TestCommands.Make("s", "shell", input), default));

        Assert.Equal(expected, ex.Message);
    }

    /// <summary>What the tool reports of both streams, compared whole: a failure shows every field that differs.</summary>
    private sealed record Output(string? Stdout, string? Stderr, bool Truncated, long StdoutBytes, long StderrBytes)
    {
        public static Output Of(ToolResult result) => new(
            result.Value.GetProperty("stdout").GetString(),
            result.Value.GetProperty("stderr").GetString(),
            result.Value.GetProperty("truncated").GetBoolean(),
            result.Value.GetProperty("stdout_bytes").GetInt64(),
            result.Value.GetProperty("stderr_bytes").GetInt64());
    }
}
