using Pipeline.Testing.Processes;

namespace Pipeline.Cli.Tests;

/// <summary>Inputs that must not hurt: each has an exit code and a message that names what was wrong.</summary>
[Collection(RealProcesses.Name)]
public sealed class InputErrorTests : IDisposable
{
    private const string Noop = """{"command_id":"n1","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""";
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-input-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static Task<(int Exit, string Out, string Err)> Run(params string[] args) => InProcessCli.RunAsync(args);

    private string Commands(int count = 1)
    {
        var path = Path.Combine(_directory, "commands.jsonl");
        File.WriteAllLines(path, Enumerable.Range(1, count).Select(i => Noop.Replace("n1", $"n{i}", StringComparison.Ordinal)));
        return path;
    }

    [Theory]
    [InlineData("same")]
    [InlineData("symlink")]
    [InlineData("hardlink")]
    [InlineData("relative")]
    public async Task Events_may_not_name_the_commands_file(string how)
    {
        var commands = Commands(3);
        var before = await File.ReadAllTextAsync(commands);
        var events = how switch
        {
            "same" => commands,
            "relative" => Path.Combine(_directory, ".", "..", Path.GetFileName(_directory), "commands.jsonl"),
            "symlink" => File.CreateSymbolicLink(Path.Combine(_directory, "link.jsonl"), commands).FullName,
            _ => HardLink(commands, Path.Combine(_directory, "hard.jsonl")),
        };

        var (exit, output, error) = await Run("run", commands, "--events", events);

        Assert.Equal(2, exit);
        Assert.Equal(string.Empty, output);
        Assert.Contains("--events names the commands file", error, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(commands));
    }

    [Fact]
    public async Task A_directory_as_the_commands_or_the_events_file_is_said_to_be_one_not_a_permission_problem()
    {
        var (exit, output, error) = await Run("run", _directory);
        Assert.Equal((2, string.Empty), (exit, output));
        Assert.Equal($"error: cannot read {_directory}: it is a directory, not a file\n", error);

        (exit, output, error) = await Run("run", Commands(), "--events", _directory);
        Assert.Equal((2, string.Empty), (exit, output));
        Assert.Equal($"error: cannot write events to {_directory}: it is a directory, not a file\n", error);
    }

    private static string HardLink(string target, string link)
    {
        using var ln = Process.Start("ln", [target, link])!;
        ln.WaitForExit();
        Assert.Equal(0, ln.ExitCode);
        return link;
    }

    [Theory]
    [InlineData("--pull-parallelism", "0")]
    [InlineData("--pull-parallelism", "4097")]
    [InlineData("--claim-parallelism", "2147483647")]
    [InlineData("--ack-parallelism", "-1")]
    [InlineData("--dispatch-parallelism", "2147483647")]
    [InlineData("--dispatch-parallelism", "99999999999999999999")]
    [InlineData("--emit-parallelism", "1e3")]
    [InlineData("--max-in-flight", "1048577")]
    [InlineData("--emit-batch", "0")]
    [InlineData("--max-attempts", "1001")]
    [InlineData("--tool-timeout-ms", "0")]
    [InlineData("--tool-timeout-ms", "86400001")]
    [InlineData("--shutdown-timeout-ms", "-1")]
    [InlineData("--shutdown-timeout-ms", "many")]
    [InlineData("--max-line-bytes", "0")]
    [InlineData("--max-line-bytes", "67108865")]
    [InlineData("--max-output-bytes", "0")]
    [InlineData("--max-output-bytes", "16777217")]
    public async Task A_number_out_of_range_is_a_usage_error_naming_the_option(string option, string value)
    {
        var (exit, output, error) = await Run("run", Commands(), option, value);

        Assert.Equal(2, exit);
        Assert.Equal(string.Empty, output);
        Assert.StartsWith($"error: {option} must be a whole number from ", error, StringComparison.Ordinal);
        Assert.Contains($", not '{value}'.", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_bound_must_leave_room_for_the_pulls()
    {
        var (exit, _, error) = await Run("run", Commands(), "--max-in-flight", "4", "--pull-parallelism", "8");

        Assert.Equal(2, exit);
        Assert.Equal("error: --max-in-flight (4) must be at least --pull-parallelism (8)." + Environment.NewLine, error);
    }

    [Fact]
    public async Task An_events_path_that_cannot_be_created_is_a_usage_error_before_anything_runs()
    {
        var (exit, output, error) = await Run("run", Commands(), "--events", _directory);

        Assert.Equal(2, exit);
        Assert.Equal(string.Empty, output);
        Assert.StartsWith($"error: cannot write events to {_directory}: ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_disk_is_one_error_line_a_stop_and_exit_1()
    {
        // 1.5 s commands: the first batch of events fails long before the rest of the file is read.
        var commands = Path.Combine(_directory, "slow.jsonl");
        File.WriteAllLines(commands, Enumerable.Range(1, 400).Select(i =>
            $$$"""{"command_id":"s{{{i}}}","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":1500}}"""));
        using var process = PipelineProcess.Start(["run", commands, "--events", "/dev/full", "--max-in-flight", "32"]);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        Assert.Equal(
            "error: cannot write events to /dev/full: No space left on device : '/dev/full'; the run stopped.\n",
            process.Stderr);
        Assert.Contains("result         stopped because the events file could not be written", process.Stdout, StringComparison.Ordinal);
        // Stopped promptly: the first 32 ran, far from all 400 (which would take 19 s at 16 at a time).
        Assert.InRange(process.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
        // The running ones were acked as they started; what had not started was handed back (nacked).
        var handles = System.Text.RegularExpressions.Regex.Match(process.Stdout, @"handles        (\d+) pulled = (\d+) acked \+ (\d+) nacked \+ 0 terminated \+ 0 settle errors");
        Assert.True(handles.Success, process.Stdout);
        var (pulled, acked, nacked) = (int.Parse(handles.Groups[1].Value), int.Parse(handles.Groups[2].Value), int.Parse(handles.Groups[3].Value));
        Assert.Equal(pulled, acked + nacked);
        Assert.Contains($"handed back    {nacked} not started", process.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("handles        400 pulled", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Events_to_a_closed_pipe_stop_the_run_instead_of_counting_as_written()
    {
        var startInfo = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "pipeline"), ["run", Commands(20_000), "--events", "-"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(startInfo)!;
        var stderr = process.StandardError.ReadToEndAsync();
        // Read one event, then close the pipe, as `pipeline run ... --events - | head -1` would.
        Assert.NotNull(await process.StandardOutput.ReadLineAsync());
        process.StandardOutput.BaseStream.Dispose();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);

        Assert.Equal(1, process.ExitCode);
        var error = await stderr;
        Assert.Contains("error: cannot write events to stdout: Broken pipe; the run stopped.", error, StringComparison.Ordinal);
        Assert.Contains("result         stopped because the events file could not be written (Broken pipe)", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dash_reads_the_commands_from_standard_input()
    {
        var input = string.Join('\n', Enumerable.Range(1, 5).Select(i => Noop.Replace("n1", $"n{i}", StringComparison.Ordinal))) + "\n"
            + "{\"command_id\": \"long" + new string('x', 200) + "\"}\n";
        using var process = PipelineProcess.Start(["run", "-", "--max-line-bytes", "100"], stdin: input);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        Assert.Contains("pipeline run stdin", process.Stdout, StringComparison.Ordinal);
        Assert.Contains("completed      5", process.Stdout, StringComparison.Ordinal);
        Assert.Contains("claim.failed   (no command): stdin line 6: line is longer than the limit of 100 bytes (--max-line-bytes)", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stdin_that_never_ends_does_not_hold_a_stop()
    {
        // Standard input left open and silent: Ctrl+C must still end the run promptly.
        var startInfo = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "pipeline"), ["run", "-"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(ChildProcesses.WithDefaultSignals(startInfo))!;
        await process.StandardInput.WriteLineAsync(Noop);
        await process.StandardInput.FlushAsync();
        // Signalled once the command is done (the progress line says so), however loaded the machine.
        var seen = new System.Text.StringBuilder();
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            seen.AppendLine(line);
            if (line.Contains("done 1", StringComparison.Ordinal))
            {
                break;
            }
        }

        var output = process.StandardOutput.ReadToEndAsync();
        using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(130, process.ExitCode);
        Assert.Contains("completed      1", seen + await output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_events_path_is_a_usage_error()
    {
        var (exit, _, error) = await Run(["run", Commands(), "--events", ""]);

        Assert.Equal(2, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_commands_path_is_a_usage_error()
    {
        var (exit, _, error) = await Run(["run", ""]);

        Assert.Equal(2, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Events_may_not_name_the_file_standard_input_reads()
    {
        // pipeline run - --events commands.jsonl < commands.jsonl: the events file would truncate the input being read.
        var commands = Commands();
        var before = await File.ReadAllTextAsync(commands);

        var (exit, _, error) = await InProcessCli.RunAsync(["run", "-", "--events", commands], stdin: () => File.OpenRead(commands));

        Assert.Equal(2, exit);
        Assert.Contains("--events names the commands file", error, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(commands));
    }
}
