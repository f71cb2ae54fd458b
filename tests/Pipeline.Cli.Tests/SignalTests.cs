namespace Pipeline.Cli.Tests;

/// <summary>What the real <c>pipeline run</c> process does when it is sent a signal mid-run.</summary>
[Collection(RealProcesses.Name)]
public sealed class SignalTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-signal-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Commands(int count, int delayMs)
    {
        var path = Path.Combine(_directory, "commands.jsonl");
        File.WriteAllLines(path, Enumerable.Range(1, count).Select(i =>
            $$$"""{"command_id":"c{{{i}}}","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":{{{delayMs}}}}}"""));
        return path;
    }

    private static async Task<List<(string Type, string Id)>> ReadEvents(string path) =>
        [.. (await File.ReadAllLinesAsync(path)).Select(line =>
        {
            var e = JsonDocument.Parse(line).RootElement;
            return (e.GetProperty("event_type").GetString()!, e.GetProperty("command_id").GetString()!);
        })];

    private static void EveryStartedHasItsEnd(List<(string Type, string Id)> events)
    {
        var started = events.Where(e => e.Type == "command.started").Select(e => e.Id).ToHashSet();
        var ended = events.Where(e => e.Type is "command.completed" or "command.failed").Select(e => e.Id).ToHashSet();
        Assert.NotEmpty(started);
        Assert.Empty(started.Except(ended));
    }

    /// <summary>
    /// Runs <paramref name="count"/> delay commands of <paramref name="delayMs"/> with their events
    /// to a file, sends <paramref name="signal"/> at the first progress line, and waits (30 s at most) for the exit.
    /// </summary>
    private async Task<SignalledRun> RunAndSignalAsync(int count, int delayMs, int signal, params string[] args)
    {
        var events = Path.Combine(_directory, "events.jsonl");
        var process = PipelineProcess.Start(["run", Commands(count, delayMs), "--events", events, .. args]);
        await process.WaitForOutputAsync("progress:", TimeSpan.FromSeconds(30));
        var signalled = Stopwatch.StartNew();
        process.Signal(signal);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return new SignalledRun(process, events, exit, signalled.Elapsed);
    }

    /// <summary>Sends <paramref name="signal"/> once <paramref name="ready"/> has completed, and waits (30 s at most) for the exit code.</summary>
    private static async Task<int> SignalOnceAsync(PipelineProcess process, Task ready, int signal)
    {
        await ready;
        process.Signal(signal);
        return await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
    }

    private sealed record SignalledRun(PipelineProcess Process, string Events, int Exit, TimeSpan SinceSignal) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    [Theory]
    [InlineData(PipelineProcess.SigInt, "SIGINT", 130)]
    [InlineData(PipelineProcess.SigTerm, "SIGTERM", 143)]
    public async Task A_signal_drains_within_the_shutdown_timeout_then_prints_the_summary(int signal, string name, int exitCode)
    {
        var events = Path.Combine(_directory, "events.jsonl");
        using var process = PipelineProcess.Start(["run", Commands(256, 30_000), "--events", events, "--shutdown-timeout-ms", "1000"]);
        // Signalled once all 256 are read: 16 running (acked as their tools started) and 240
        // queued for dispatch, unsettled. The first progress line can come before that on a loaded machine.
        await process.WaitForProgressAsync(@"unsettled 240, .*claim 0/0 ack 0/0 dispatch 240/16 ", TimeSpan.FromSeconds(30));

        var signalled = Stopwatch.StartNew();
        process.Signal(signal);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var took = signalled.Elapsed;

        Assert.Equal(exitCode, exit);
        // The shutdown timeout plus about a second (the 30 s delays are cancelled at the deadline);
        // the upper bound has slack for a loaded 2-core machine.
        Assert.InRange(took, TimeSpan.FromMilliseconds(900), TimeSpan.FromMilliseconds(3000));
        Assert.Contains($"pipeline: {name}: stopping; commands in flight have 1000 ms to finish", process.Stderr, StringComparison.Ordinal);
        Assert.Contains("256 pulled = ", process.Stdout, StringComparison.Ordinal);
        Assert.Contains($"result         stopped by {name} before every command was done", process.Stdout, StringComparison.Ordinal);
        var written = await ReadEvents(events);
        EveryStartedHasItsEnd(written);
        Assert.Contains("events         " + written.Count + " written", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_lets_the_commands_in_flight_finish_and_stops_pulling()
    {
        // 16 at a time, 1.5 s each: a stop after the first second finds the first 16 running.
        using var run = await RunAndSignalAsync(64, 1500, PipelineProcess.SigTerm, "--max-in-flight", "16", "--shutdown-timeout-ms", "20000");
        var (process, events, exit, _) = run;

        Assert.Equal(143, exit);
        var written = await ReadEvents(events);
        EveryStartedHasItsEnd(written);
        // Drained, not cancelled: everything that started completed, and the rest was never started.
        Assert.DoesNotContain(written, e => e.Type == "command.failed");
        var completed = written.Count(e => e.Type == "command.completed");
        Assert.InRange(completed, 16, 63);
        Assert.Contains($"completed      {completed}", process.Stdout, StringComparison.Ordinal);
        Assert.Contains("result         stopped by SIGTERM", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_sigint_stops_at_once_and_still_settles()
    {
        var events = Path.Combine(_directory, "events.jsonl");
        using var process = PipelineProcess.Start(["run", Commands(64, 30_000), "--events", events, "--shutdown-timeout-ms", "60000"]);
        await process.WaitForOutputAsync("progress:", TimeSpan.FromSeconds(30));

        process.Signal(PipelineProcess.SigInt);
        await process.WaitForOutputAsync("pipeline: SIGINT: stopping", TimeSpan.FromSeconds(10));
        var again = Stopwatch.StartNew();
        process.Signal(PipelineProcess.SigInt);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(130, exit);
        Assert.InRange(again.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(3));
        Assert.Contains("pipeline: stopping now", process.Stderr, StringComparison.Ordinal);
        // The 16 running were acked as they started; the 48 queued were never started, and are nacked.
        Assert.Contains("64 pulled = 16 acked + 48 nacked", process.Stdout, StringComparison.Ordinal);
        EveryStartedHasItsEnd(await ReadEvents(events));
    }

    [Fact]
    public async Task Sigquit_stops_at_once()
    {
        using var run = await RunAndSignalAsync(32, 30_000, PipelineProcess.SigQuit, "--shutdown-timeout-ms", "60000");
        var (process, events, exit, sinceSignal) = run;

        Assert.Equal(131, exit);
        Assert.InRange(sinceSignal, TimeSpan.Zero, TimeSpan.FromSeconds(3));
        Assert.Contains("result         stopped by SIGQUIT", process.Stdout, StringComparison.Ordinal);
        EveryStartedHasItsEnd(await ReadEvents(events));
    }

    [Fact]
    public async Task A_signal_after_the_work_is_done_changes_nothing()
    {
        using var process = PipelineProcess.Start(["run", Commands(4, 3000), "--shutdown-timeout-ms", "20000"]);
        // All four are running (the input is read to its end); a drain lets them finish.
        var exit = await SignalOnceAsync(process, process.WaitForOutputAsync("dispatch 0/4", TimeSpan.FromSeconds(30)), PipelineProcess.SigTerm);

        Assert.Equal(0, exit);
        Assert.Contains("completed      4", process.Stdout, StringComparison.Ordinal);
        Assert.Contains("result         all commands succeeded", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sighup_drains_like_sigterm()
    {
        using var run = await RunAndSignalAsync(256, 30_000, PipelineProcess.SigHup, "--shutdown-timeout-ms", "500");
        var (process, events, exit, _) = run;

        Assert.Equal(129, exit);
        Assert.Contains("result         stopped by SIGHUP", process.Stdout, StringComparison.Ordinal);
        EveryStartedHasItsEnd(await ReadEvents(events));
    }

    [Fact]
    public async Task A_stop_after_the_input_is_done_exits_as_the_results_say()
    {
        // Everything read; one command fails on its own, one finishes during the drain.
        var commands = Path.Combine(_directory, "done.jsonl");
        File.WriteAllLines(commands,
        [
            """{"command_id":"bad","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":"x"}}""",
            """{"command_id":"slow","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":2500}}""",
        ]);
        using var process = PipelineProcess.Start(["run", commands, "--shutdown-timeout-ms", "20000"]);
        // Signalled once both are read: "bad" failed, "slow" running, none unsettled. The first
        // progress line can come before the file is read (then the stop cuts the input: exit 130).
        var exit = await SignalOnceAsync(process, process.WaitForProgressAsync(@"failed 1, skipped 0, unsettled 0, .*claim 0/0 ack 0/0 dispatch 0/1 ", TimeSpan.FromSeconds(30)), PipelineProcess.SigInt);

        Assert.Equal(1, exit);
        Assert.Contains("completed      1", process.Stdout, StringComparison.Ordinal);
        Assert.Contains("result         some commands failed", process.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopping_now_kills_a_forking_shell_command_and_reports_it()
    {
        // A fork loop under the shell tool, stopped at once: its whole process group dies with
        // it, it ends with a command.failed, and nothing is reported as succeeded.
        var marker = "1111." + Environment.ProcessId;
        var commands = Path.Combine(_directory, "forky.jsonl");
        File.WriteAllText(commands, $$$"""{"command_id":"forky","execution_id":1,"step":"s","tool_kind":"shell","input":{"command":"sh","args":["-c","while true; do sleep {{{marker}}} & sleep 0.01; done"],"timeout_ms":60000}}""" + "\n");
        var events = Path.Combine(_directory, "events.jsonl");
        using var process = PipelineProcess.Start(["run", commands, "--enable-shell", "--events", events]);
        await process.WaitForOutputAsync("progress:", TimeSpan.FromSeconds(30));

        process.Signal(PipelineProcess.SigQuit);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.NotEqual(0, exit);
        Assert.DoesNotContain("all commands succeeded", process.Stdout, StringComparison.Ordinal);
        var written = await ReadEvents(events);
        Assert.Contains(written, e => e is ("command.failed", "forky"));
        await Task.Delay(300);
        using var pgrep = Process.Start(new ProcessStartInfo("pgrep", ["-f", "sleep " + marker]) { RedirectStandardOutput = true })!;
        var left = (await pgrep.StandardOutput.ReadToEndAsync()).Trim();
        await pgrep.WaitForExitAsync();
        Assert.True(left.Length == 0, $"processes left behind: {left}");
    }
}
